"""One JSON summary of a bench/gpu_check.sh run: per part its exit code, which paths finished and
which did not, and the headline figures of each part.

    python bench/gpu_summary.py OUT_DIR STATUS_JSON

STATUS_JSON maps part -> {"rc", "seconds", "limit"}. Each part's figures are read from its JSON
Lines file `OUT_DIR/<part>.jsonl` (bench/partlog.py), a last line cut short by a kill tolerated,
so a part stopped at its time limit still reports the paths it finished. Per part: `finished`
(measured), `skipped` (path -> reason, e.g. a CUDA-only feature on a CPU), `failed` (path ->
error), `unfinished` (path -> why: its own deadline, stopped while running at the part's limit,
or not reached), `complete` (every planned path finished or skipped). Speeds are given as ratios
against the plain path of the same run, so figures from different machines are not mixed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import read_part  # noqa: E402

# Exit codes of a part stopped by `timeout` (SIGTERM at the limit, SIGKILL after -k).
TIMED_OUT = (124, 137)


def part_state(lines: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    """Which paths of a part finished, were skipped, failed, or did not finish, and why."""
    state: dict[str, Any] = dict(status or {})
    if status is not None:
        state["timed_out"] = status.get("rc") in TIMED_OUT
    if not lines["exists"]:
        state.update(complete=False, finished=[], skipped={}, failed={}, unfinished={"(part)": "wrote no lines"})
        return state
    records = lines["records"]
    finished = [p for p, r in records.items() if r.get("status") == "ok"]
    skipped = {p: r.get("reason", "") for p, r in records.items() if r.get("status") == "skipped"}
    failed = {p: r.get("error", r.get("reason", "")) for p, r in records.items() if r.get("status") == "failed"}
    unfinished = {p: f"timeout: {r.get('reason', '')}" for p, r in records.items() if r.get("status") == "timeout"}
    for p in lines["unfinished"]:
        unfinished[p] = "stopped while running" if p in lines["in_progress"] else "not reached"
    state.update(finished=finished, skipped=skipped, failed=failed, unfinished=unfinished,
                 complete=not failed and not unfinished and bool(records) and not lines["truncated"])
    if lines["truncated"]:
        state["truncated_last_line"] = True
    if lines["bad_lines"]:
        state["bad_lines"] = lines["bad_lines"]
    return state


def _ok(records: dict[str, dict]) -> dict[str, dict]:
    return {p: r for p, r in records.items() if r.get("status") == "ok"}


def sr_train_figures(records: dict[str, dict]) -> dict:
    out = {}
    for name, rec in _ok(records).items():
        if "steps_per_s" in rec:
            out[name] = {k: rec.get(k) for k in ("steps_per_s", "batch", "peak_mem_gib", "amp", "last_loss")}
        elif name == "resume":
            out[name] = {k: rec.get(k) for k in ("interrupted_at", "max_weight_diff")}
    return out


def condense_step_figures(records: dict[str, dict]) -> dict:
    paths = {p: r for p, r in _ok(records).items() if "ms_per_step" in r}
    plain = paths.get("plain", {}).get("ms_per_step")
    out: dict[str, Any] = {}
    for name, rec in paths.items():
        ms = rec["ms_per_step"]
        out[name] = {"ms_per_step": ms, "steps_per_second": round(1000 / ms, 2),
                     "speedup_vs_plain": round(plain / ms, 2) if plain else None,
                     "extractor_fwd_bwd_ms": rec.get("extractor_fwd_bwd_alone_ms"),
                     "breakdown_ms": rec.get("breakdown_ms")}
    check = records.get("check_fast_vs_plain", {}).get("loss_relative_difference")
    if check:
        out["loss_relative_difference_fast_vs_plain"] = max(check.values())
    fused = records.get("fast_fused_attention", {}).get("loss_relative_difference_vs_explicit_attention")
    if fused:
        out["loss_relative_difference_fused_vs_explicit_attention"] = max(fused.values())
    return out


def condense_instance_figures(records: dict[str, dict], reference: dict[str, dict] | None = None) -> dict:
    """Per path: ms/step after the last assignment event, its speed-up against the plain and the
    fast path of the same process (or of `reference`, the condense_instance part of the same run,
    for the compiled part), the final held-out MMD, and the differences to the fast path's patches
    (the rerun and resume checks are paths of their own, reported with the fast path).
    `mmd_replicate_spread` is |MMD(seed 0) - MMD(seed 1)| of the fast path: the scale at which a
    path's MMD counts as equal."""
    data = {p: dict(r) for p, r in _ok(records).items()}
    if "fast" in data:
        for check in ("fast_rerun", "fast_resume"):
            data["fast"].update({k: v for k, v in data.pop(check, {}).items() if k.endswith("max_abs_diff")})
    ref = _ok(reference) if reference else data
    plain = ref.get("plain", {}).get("ms_per_step_settled")
    fast = ref.get("fast", {}).get("ms_per_step_settled")
    out: dict[str, Any] = {}
    for name, rec in data.items():
        if "ms_per_step_settled" not in rec:
            continue
        ms = rec["ms_per_step_settled"]
        out[name] = {k: rec[k] for k in ("ms_per_step_settled", "ms_per_instance_step", "rerun_max_abs_diff",
                                         "resume_max_abs_diff", "max_abs_diff_vs_fast",
                                         "max_abs_diff_vs_single", "diag_mmd") if k in rec}
        per_instance = rec.get("ms_per_instance_step", ms)
        out[name]["speedup_vs_plain"] = round(plain / per_instance, 2) if plain and per_instance else None
        out[name]["speedup_vs_fast"] = round(fast / per_instance, 2) if fast and per_instance else None
    seeds = [data.get(k, {}).get("diag_mmd") for k in ("fast", "fast_seed1")]
    if None not in seeds:
        out["mmd_replicate_spread"] = abs(seeds[0] - seeds[1])
    return out


def extractor_figures(records: dict[str, dict]) -> dict:
    """Per path and batch size: ms per patch, speed-up over float32 at the same size, memory kept
    for the backward pass, CUDA peak, and the features' difference to float32; batches that did not
    fit are listed as out of memory."""
    keys = ("ms_per_patch", "speedup", "saved_mib_per_patch", "peak_gib", "feature_rel_diff", "grad_rel_diff")
    out: dict[str, Any] = {p: {k: r[k] for k in keys if k in r} for p, r in _ok(records).items()}
    out.update({p: {"status": "out_of_memory"} for p, r in records.items() if r.get("status") == "out_of_memory"})
    return out


def profile_figures(records: dict[str, dict]) -> dict:
    """Per profiled path: its table's file and the entry with the most self time."""
    return {p: {"table": r.get("table"), "top": (r.get("top") or [None])[0]} for p, r in _ok(records).items()}


def seconds_figures(key: str):
    def figures(records: dict[str, dict]) -> dict:
        return {p: r.get(key) for p, r in _ok(records).items()}
    return figures


FIGURES = {
    "sr_train": sr_train_figures,
    "condense_step": condense_step_figures,
    "extractor": extractor_figures,
    "condense_instance": condense_instance_figures,
    "profile": profile_figures,
    "scan": seconds_figures("seconds_per_fwd_bwd"),
    "select": seconds_figures("seconds"),
}


def summarise(out_dir: Path, status: dict) -> dict:
    gpu = (out_dir / "gpu.txt").read_text().splitlines() if (out_dir / "gpu.txt").exists() else []
    summary: dict = {"gpu": gpu[0] if gpu else None, "torch": gpu[1] if len(gpu) > 1 else None, "parts": {}}
    names = list(status) + sorted(p.stem for p in out_dir.glob("*.jsonl") if p.stem not in status)
    lines = {name: read_part(out_dir / f"{name}.jsonl") for name in names}
    for name in names:
        summary["parts"][name] = part_state(lines[name], status.get(name))
    tests = out_dir / "tests.out"
    if tests.exists():
        text = [ln for ln in tests.read_text().splitlines() if ln.strip()]
        summary["tests"] = text[-1] if text else None
    for name, figures in FIGURES.items():
        if name in lines and lines[name]["records"]:
            summary[name] = figures(lines[name]["records"])
    if "condense_compiled" in lines and lines["condense_compiled"]["records"]:
        reference = lines["condense_instance"]["records"] if "condense_instance" in lines else None
        summary["condense_compiled"] = condense_instance_figures(lines["condense_compiled"]["records"], reference)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: gpu_summary.py OUT_DIR STATUS_JSON", file=sys.stderr)
        return 2
    print(json.dumps(summarise(Path(args[0]), json.loads(args[1])), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
