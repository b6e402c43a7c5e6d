"""Results of a run: per-image SR test scores gathered into one long-format frame, and the
Markdown record of a finished run.

SR testing writes one `metrics.csv` per (method, model) with a row per test image
(`testset, image, psnr, ssim`). A data set's score is the mean of its per-image scores, as in
the paper and BasicSR's test scripts.

The run record (`summarise_run`) holds the run's tables, the command and commit, the wall time
per stage (from Snakemake's `benchmark:` files), the seeds, the memorisation summary, and how far
each condensation went: the held-out diagnostics of every image's log (`condense/<key>/<image>.json`)
summarised per condensation folder, which shows whether condensation reached a plateau and lets
two settings of one run be compared image by image.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from idc.condense.diagnostics import (
    DIAGNOSTIC_KEYS,
    diagnostic_at_step,
    diagnostic_curve,
    read_condensation_logs,
    settling_step,
)

logger = logging.getLogger(__name__)

# Columns of the long-format results frame and of tables/*.csv (DESIGN.md contract).
RESULT_COLUMNS = ("method", "model", "testset", "psnr", "ssim", "n_images")
METRICS = ("psnr", "ssim")
PER_IMAGE_COLUMNS = ("testset", "image", "psnr", "ssim")
ENTRY_KEYS = ("method", "model", "path")
# Optional: the replicate number of the entry's training run; a row with several replicates is
# their mean (per image, then over the test set).
OPTIONAL_ENTRY_KEYS = ("replicate",)


def read_metrics_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate one per-image metrics file (`testset, image, psnr, ssim`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    frame = pd.read_csv(path, dtype={"testset": str, "image": str})
    missing = [c for c in PER_IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{path}: no image rows")
    duplicated = frame.duplicated(subset=["testset", "image"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ValueError(f"{path}: image {row['image']!r} of {row['testset']} listed twice")
    for metric in METRICS:
        values = pd.to_numeric(frame[metric], errors="coerce")
        bad = ~values.map(math.isfinite)
        if bad.any():
            row = frame[bad].iloc[0]
            raise ValueError(
                f"{path}: {metric} of image {row['image']!r} ({row['testset']}) is not a "
                f"finite number: {row[metric]!r}"
            )
        frame[metric] = values.astype(float)
    return frame[list(PER_IMAGE_COLUMNS)]


def summarise_metrics(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per test set: mean PSNR and SSIM over its images and the number of images."""
    grouped = per_image.groupby("testset", sort=False)
    summary = grouped[list(METRICS)].mean()
    summary["n_images"] = grouped.size()
    return summary.reset_index()


def validate_entries(entries: Iterable[Mapping[str, object]]) -> list[dict[str, Any]]:
    """Check `{"method", "model", "path"[, "replicate"]}` entries (keys, names, no duplicate
    (method, model, replicate)); files not read. `replicate` defaults to 0."""
    checked: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, int], str] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"results entry {i} is not a mapping: {entry!r}")
        missing = [k for k in ENTRY_KEYS if k not in entry]
        if missing:
            raise ValueError(f"results entry {i} lacks key(s) {', '.join(missing)}")
        extra = sorted(set(entry) - set(ENTRY_KEYS) - set(OPTIONAL_ENTRY_KEYS))
        if extra:
            raise ValueError(f"results entry {i} has unknown key(s) {', '.join(extra)}")
        method, model, path = (str(entry[k]) for k in ENTRY_KEYS)
        if not method or not model:
            raise ValueError(f"results entry {i}: empty method or model name")
        replicate = entry.get("replicate", 0)
        if isinstance(replicate, bool) or not isinstance(replicate, (int, np.integer)) or replicate < 0:
            raise ValueError(f"results entry {i}: replicate must be a non-negative integer, got {replicate!r}")
        key = (method, model, int(replicate))
        if key in seen:
            raise ValueError(
                f"results for method {method!r}, model {model!r}, replicate {int(replicate)} given twice: "
                f"{seen[key]} and {path}"
            )
        seen[key] = path
        checked.append({"method": method, "model": model, "path": path, "replicate": int(replicate)})
    return checked


def mean_over_replicates(frames: Mapping[int, pd.DataFrame], what: str) -> pd.DataFrame:
    """Per-image metrics averaged over replicates (replicate -> per-image frame); every replicate
    must hold the same images, or the mean would mix test sets."""
    items = sorted(frames.items())
    first_rep, first = items[0]
    keys = set(zip(first["testset"], first["image"]))
    for rep, frame in items[1:]:
        if set(zip(frame["testset"], frame["image"])) != keys:
            raise ValueError(f"{what}: replicate {rep} was tested on other images than replicate {first_rep}")
    stacked = pd.concat([f for _, f in items], ignore_index=True)
    mean = stacked.groupby(["testset", "image"], sort=False)[list(METRICS)].mean().reset_index()
    return mean[list(PER_IMAGE_COLUMNS)]


def collect_results(entries: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Long-format results `method, model, testset, psnr, ssim, n_images` from metrics files.

    `entries` lists `{"method", "model", "path"}` mappings, one per trained SR model; `path`
    is its per-image `metrics.csv`. All entries and files are checked before any is summarised,
    so a missing or malformed file fails at once with its name.
    """
    checked = validate_entries(entries)
    missing = [e["path"] for e in checked if not Path(e["path"]).is_file()]
    if missing:
        raise FileNotFoundError(f"metrics file not found: {missing[0]}")
    per_row: dict[tuple[str, str], dict[int, pd.DataFrame]] = defaultdict(dict)
    for entry in checked:
        per_row[(entry["method"], entry["model"])][entry["replicate"]] = read_metrics_csv(entry["path"])
        logger.debug("read %s (%s/%s, replicate %d)", entry["path"], entry["method"], entry["model"],
                     entry["replicate"])
    parts = []
    for (method, model), frames in per_row.items():
        summary = summarise_metrics(mean_over_replicates(frames, f"results of {method}/{model}"))
        summary.insert(0, "model", model)
        summary.insert(0, "method", method)
        parts.append(summary)
    logger.info("collected results of %d trained models in %d rows", len(checked), len(parts))
    if not parts:
        return normalise_results(pd.DataFrame({c: [] for c in RESULT_COLUMNS}))
    return normalise_results(pd.concat(parts, ignore_index=True))


def normalise_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a long-format results frame and give it canonical column order and dtypes."""
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns and c != "n_images"]
    if missing:
        raise ValueError(f"results frame lacks column(s) {', '.join(missing)}")
    out = frame.copy()
    if "n_images" not in out.columns:
        out["n_images"] = pd.NA
    out = out[list(RESULT_COLUMNS)].reset_index(drop=True)
    for column in ("method", "model", "testset"):
        out[column] = out[column].astype(str)
    for metric in METRICS:
        out[metric] = pd.to_numeric(out[metric], errors="raise").astype(float)
    out["n_images"] = pd.to_numeric(out["n_images"]).astype("Int64")
    duplicated = out.duplicated(subset=["method", "model", "testset"])
    if duplicated.any():
        row = out[duplicated].iloc[0]
        raise ValueError(
            f"results list {row['method']}/{row['model']} on {row['testset']} more than once"
        )
    return out


def read_results_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a long-format results CSV, e.g. a table's `tables/<name>.csv`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    frame = pd.read_csv(path, dtype={"method": str, "model": str, "testset": str})
    return normalise_results(frame)


def results_to_csv_text(frame: pd.DataFrame) -> str:
    # float_format=None keeps pandas' shortest round-trip repr, so re-reading is exact.
    return normalise_results(frame).to_csv(index=False, lineterminator="\n")


# ---------------------------------------------------------------- the record of a finished run


# ---------------------------------------------------------------- condensation convergence


def convergence_rows(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per condensation folder: images, configured steps, the mean (and spread over images) of the
    final diagnostics, MMD² at the start, at the end of the warm-up and at the first lr decay, the
    median step from which MMD² stays within 5% of its total change, the relative change of MMD²
    over the decay phase (first milestone to the end: near 0 on a plateau), seconds per image."""
    rows = []
    for name, logs in runs.items():
        cfg = logs[0]["config"]
        end = int(logs[0].get("stopping", {}).get("end_step", cfg["steps"]))
        first_decay = (cfg["milestones"] or [end])[0]
        row: dict[str, Any] = {"run": name, "images": len(logs), "steps": end,
                               "seconds": float(np.mean([log["seconds"] for log in logs]))}
        for key in DIAGNOSTIC_KEYS:
            finals = [log["diagnostics"]["final"][key] for log in logs]
            row[key] = float(np.mean(finals))
            row[key + "_std"] = float(np.std(finals))
        row["mmd_initial"] = float(np.mean([log["diagnostics"]["initial"]["mmd"] for log in logs]))
        row["mmd_warmup_end"] = float(np.mean([diagnostic_at_step(log, cfg["warmup"]) for log in logs]))
        row["mmd_first_decay"] = float(np.mean([diagnostic_at_step(log, first_decay) for log in logs]))
        row["decay_phase_change"] = (row["mmd"] - row["mmd_first_decay"]) / row["mmd_first_decay"]
        settled = [settling_step(*diagnostic_curve(log)) for log in logs]
        row["mmd_settling_step"] = int(np.median([s for s in settled if s is not None]))
        rows.append(row)
    return rows


def paired_mmd_difference(runs: dict[str, list[dict[str, Any]]], a: str, b: str) -> dict[str, float] | None:
    """Mean and spread of the per-image difference of final MMD² between two condensation folders
    over the images both hold (None when either is missing)."""
    if a not in runs or b not in runs:
        return None
    by_image = {log["image_id"]: log["diagnostics"]["final"]["mmd"] for log in runs[b]}
    diffs = [log["diagnostics"]["final"]["mmd"] - by_image[log["image_id"]] for log in runs[a]
             if log["image_id"] in by_image]
    if not diffs:
        return None
    return {"mean": float(np.mean(diffs)), "mean_abs": float(np.mean(np.abs(diffs))),
            "std": float(np.std(diffs)), "images": len(diffs)}


def convergence_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| condensation | images | steps | MMD² start | at warm-up end | at 1st lr decay | final (± sd over images) "
             "| change after 1st decay | settles at step | colour mean gap | coverage PSNR | diversity | s/image |",
             "| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for r in rows:
        lines.append(f"| `{r['run']}` | {r['images']} | {r['steps']} | {r['mmd_initial']:.4f} | "
                     f"{r['mmd_warmup_end']:.4f} | {r['mmd_first_decay']:.4f} | {r['mmd']:.4f} ± {r['mmd_std']:.4f} | "
                     f"{100 * r['decay_phase_change']:+.1f}% | {r['mmd_settling_step']} | "
                     f"{r['colour_mean_gap']:.3f} | {r['coverage_psnr']:.2f} | {r['diversity']:.3f} | "
                     f"{r['seconds']:.0f} |")
    return lines


# ---------------------------------------------------------------- the run record
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


def trajectory_rows(results_dir: str | Path, datasets: Mapping[str, Mapping[str, Any]],
                    rows: Sequence[str], model: str) -> pd.DataFrame:
    """Validation PSNR at each logged step of `model` trained on each row's replicates: columns
    `step, row, mean, low, high, n` (mean and range over the replicates that logged the step).
    `datasets`: the validated config's datasets (a row stands for its replicates)."""
    from idc.config import replicate_members

    parts = []
    for row in rows:
        for member in replicate_members(dict(datasets), row):
            path = Path(results_dir) / "sr" / member / model / "trajectory.csv"
            if path.is_file():
                frame = pd.read_csv(path)[["step", "psnr"]]
                frame["row"] = row
                parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["step", "row", "mean", "low", "high", "n"])
    stacked = pd.concat(parts, ignore_index=True)
    grouped = stacked.groupby(["step", "row"], sort=True)["psnr"]
    out = grouped.agg(mean="mean", low="min", high="max", n="size").reset_index()
    return out


def trajectory_markdown(frame: pd.DataFrame, rows: Sequence[str], model: str) -> list[str]:
    """Steps down, rows across: mean validation PSNR [min, max over replicates]."""
    if frame.empty:
        return []
    rows = [r for r in rows if r in set(frame["row"])]
    lines = [f"| step ({model}) | " + " | ".join(rows) + " |", "| --: | " + " | ".join("--:" for _ in rows) + " |"]
    for step, part in frame.groupby("step", sort=True):
        cells = []
        by_row = part.set_index("row")
        for row in rows:
            if row not in by_row.index:
                cells.append("")
                continue
            r = by_row.loc[row]
            spread = f" [{r['low']:.2f}, {r['high']:.2f}]" if r["n"] > 1 else ""
            cells.append(f"{r['mean']:.2f}{spread}")
        lines.append(f"| {int(step)} | " + " | ".join(cells) + " |")
    return lines


def check_run_folder(results_dir: str | Path, configfile: str | Path) -> None:
    """ValueError (or FileNotFoundError) in one line unless `configfile` is a readable mapping
    whose `run` names `results_dir`, an existing folder: a record must never put one run's name
    above another run's tables, nor describe a folder that is not there."""
    results_dir, configfile = Path(results_dir), Path(configfile)
    try:
        config = yaml.safe_load(configfile.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"config file {configfile} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(config, dict):
        raise ValueError(f"config file {configfile} must hold a mapping (got {type(config).__name__})")
    run = config.get("run")
    if not isinstance(run, str) or not run:
        raise ValueError(f"config file {configfile}: config key run is missing or not a name")
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist (run `{run}` has no results there)")
    if results_dir.resolve().name != run:
        raise ValueError(f"results folder {results_dir} is not the folder of run `{run}` named in {configfile} "
                         f"(expected results/{run})")


def _db(value: float | None) -> str:
    """A memorisation PSNR for a table: null (no patch that is not an exact copy) reads as a dash."""
    return "–" if value is None else f"{value:.2f}"


def summarise_run(results_dir: str | Path, *, configfile: str | Path, command: str, repo: str | Path = ".",
                  figures_dir: str | Path | None = None, link_base: str | Path = ".",
                  trajectories: bool = False) -> str:
    """The Markdown record of a finished run; with `figures_dir`, the condensation convergence
    figure is written there and linked relative to `link_base`, the folder of the document the
    record goes into. With `trajectories`, the validation PSNR of every table row (mean and range
    over its replicates) at each logged training step: how the rows part as training goes on."""
    results_dir, repo = Path(results_dir), Path(repo)
    config = yaml.safe_load(Path(configfile).read_text())
    lines = [f"## Run `{config['run']}`", "", f"- command: `{command}`", f"- commit: `{_commit(repo)}`",
             f"- configuration: `{configfile}` (master seed {config.get('seed', 0)}; every job derives its seed "
             "from it and its identity: stage, image, model, replicate)", ""]
    for table in sorted((results_dir / "tables").glob("*.md")):
        lines += [table.read_text().strip(), ""]
    if trajectories:
        from idc.config import validate_config

        checked = validate_config(copy.deepcopy(config))
        rows = list(dict.fromkeys(d for t in checked["targets"] for d in checked["tables"][t]["datasets"]))
        models = list(dict.fromkeys(m for t in checked["targets"] for m in checked["tables"][t]["models"]))
        validation = checked["data"].get("validation")
        for model in models:
            body = trajectory_markdown(trajectory_rows(results_dir, checked["datasets"], rows, model), rows, model)
            if body:
                lines += [f"### Validation PSNR during training ({validation}; mean over replicates [min, max])", "",
                          *body, ""]
    times = stage_wall_times(results_dir)
    if times:
        lines += ["### Wall time per stage", "", "| rule | jobs | summed job wall time (min) |", "| --- | ---: | ---: |"]
        for rule, (jobs, seconds) in sorted(times.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"| {rule} | {jobs} | {seconds / 60:.1f} |")
        total = sum(s for _, s in times.values())
        lines += [f"| **all benchmarked jobs** | {sum(j for j, _ in times.values())} | {total / 60:.1f} |", ""]
    runs = read_condensation_logs(results_dir / "condense")
    if runs:
        lines += ["### Condensation convergence (held-out diagnostics, mean over the images)", "",
                  *convergence_markdown(convergence_rows(runs)), ""]
        if figures_dir is not None:
            from idc.report.figures import plot_condensation_convergence

            png = plot_condensation_convergence(runs, Path(figures_dir) / "condense_convergence.png")
            link = Path(os.path.relpath(Path(png).resolve(), Path(link_base).resolve())).as_posix()
            lines += [f"![condensation convergence]({link})", ""]
    memo = sorted((results_dir / "datasets").glob("*.memorisation.json"))
    if memo:
        lines += ["### Memorisation (PSNR of each synthetic LR patch to its nearest real LR patch of the same image)",
                  "", "| dataset | patches | exact copies | mean dB | min dB | max dB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for path in memo:
            o = json.loads(path.read_text())["overall"]
            figures = " | ".join(_db(o[key]) for key in ("mean_db", "min_db", "max_db"))
            lines.append(f"| {path.name.removesuffix('.memorisation.json')} | {o['n']} | {o['exact_copies']} | {figures} |")
        lines += ["", "The dB figures are over the patches that are not exact copies (an exact copy has no finite "
                  "PSNR); – where every patch is one.", ""]
    return "\n".join(lines)
