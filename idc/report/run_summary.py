"""A Markdown record of one finished workflow run: its tables, the command and commit, the wall
time per stage (from Snakemake's `benchmark:` files), the seeds and the memorisation summary."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import yaml


def stage_wall_times(results_dir: Path) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, summed wall seconds) from `benchmarks/<rule>[/...].tsv`."""
    totals: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted((results_dir / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results_dir / "benchmarks").parts[0].removesuffix(".tsv")
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            totals[rule].append(float(rows[-1]["s"]))
    return {rule: (len(v), sum(v)) for rule, v in totals.items()}


def _commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summarise_run(results_dir: str | Path, *, configfile: str | Path, command: str, repo: str | Path = ".") -> str:
    results_dir, repo = Path(results_dir), Path(repo)
    config = yaml.safe_load(Path(configfile).read_text())
    lines = [f"## Run `{config['run']}`", "", f"- command: `{command}`", f"- commit: `{_commit(repo)}`",
             f"- configuration: `{configfile}` (master seed {config.get('seed', 0)}; every job derives its seed "
             "from it and its identity: stage, image, model, replicate)", ""]
    for table in sorted((results_dir / "tables").glob("*.md")):
        lines += [table.read_text().strip(), ""]
    times = stage_wall_times(results_dir)
    if times:
        lines += ["### Wall time per stage", "", "| rule | jobs | summed job wall time (min) |", "| --- | ---: | ---: |"]
        for rule, (jobs, seconds) in sorted(times.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"| {rule} | {jobs} | {seconds / 60:.1f} |")
        total = sum(s for _, s in times.values())
        lines += [f"| **all benchmarked jobs** | {sum(j for j, _ in times.values())} | {total / 60:.1f} |", ""]
    memo = sorted((results_dir / "datasets").glob("*.memorisation.json"))
    if memo:
        lines += ["### Memorisation (PSNR of each synthetic LR patch to its nearest real LR patch of the same image)",
                  "", "| dataset | patches | exact copies | mean dB | min dB | max dB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for path in memo:
            o = json.loads(path.read_text())["overall"]
            lines.append(f"| {path.name.removesuffix('.memorisation.json')} | {o['n']} | {o['exact_copies']} | "
                         f"{o['mean_db']:.2f} | {o['min_db']:.2f} | {o['max_db']:.2f} |")
        lines.append("")
    return "\n".join(lines)
