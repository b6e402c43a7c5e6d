"""One JSON summary of a bench/gpu_check.sh run: exit codes plus the headline figures of each part.

    python bench/gpu_summary.py OUT_DIR STATUS_JSON

STATUS_JSON maps part -> {"rc", "seconds"}. Speeds are given as ratios against the plain path of
the same run, so figures from different machines are not mixed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: Path) -> dict | None:
    """The JSON object a part printed, or None when it printed none (failed or cut off)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


def condense_step_figures(data: dict) -> dict:
    paths = data.get("paths", {})
    plain = paths.get("plain", {}).get("ms_per_step")
    out = {}
    for name, rec in paths.items():
        ms = rec["ms_per_step"]
        out[name] = {"ms_per_step": ms, "steps_per_second": round(1000 / ms, 2),
                     "speedup_vs_plain": round(plain / ms, 2) if plain else None,
                     "extractor_fwd_bwd_ms": rec.get("breakdown_ms", {}).get("extractor_fwd_bwd_alone")}
    for key in ("loss_relative_difference_fast_vs_plain", "loss_relative_difference_fused_vs_explicit_attention"):
        if key in data:
            out[key] = max(data[key].values())
    return out


def condense_instance_figures(data: dict, reference: dict | None = None) -> dict:
    """Per path: ms/step after the last assignment event, its speed-up against the plain and the
    fast path of the same process (or of `reference`, the condense_instance part of the same run,
    for the compiled part), the final held-out MMD, and the differences to the fast path's patches.
    `mmd_replicate_spread` is |MMD(seed 0) - MMD(seed 1)| of the fast path: the scale at which a
    path's MMD counts as equal."""
    ref = reference or data
    plain = ref.get("plain", {}).get("ms_per_step_settled")
    fast = ref.get("fast", {}).get("ms_per_step_settled")
    out = {}
    for name, rec in data.items():
        if isinstance(rec, dict) and "ms_per_step_settled" in rec:
            ms = rec["ms_per_step_settled"]
            out[name] = {k: rec[k] for k in ("ms_per_step_settled", "ms_per_instance_step", "rerun_max_abs_diff",
                                             "resume_max_abs_diff", "max_abs_diff_vs_fast",
                                             "max_abs_diff_vs_single", "diag_mmd") if k in rec}
            per_instance = rec.get("ms_per_instance_step", ms)
            out[name]["speedup_vs_plain"] = round(plain / per_instance, 2) if plain else None
            out[name]["speedup_vs_fast"] = round(fast / per_instance, 2) if fast else None
    seeds = [data.get(k, {}).get("diag_mmd") for k in ("fast", "fast_seed1")]
    if None not in seeds:
        out["mmd_replicate_spread"] = abs(seeds[0] - seeds[1])
    return out


def summarise(out_dir: Path, status: dict) -> dict:
    gpu = (out_dir / "gpu.txt").read_text().splitlines() if (out_dir / "gpu.txt").exists() else []
    summary: dict = {"gpu": gpu[0] if gpu else None, "torch": gpu[1] if len(gpu) > 1 else None, "parts": status}
    tests = out_dir / "tests.out"
    if tests.exists():
        lines = [ln for ln in tests.read_text().splitlines() if ln.strip()]
        summary["tests"] = lines[-1] if lines else None
    step = _load(out_dir / "condense_step.out")
    if step:
        summary["condense_step"] = condense_step_figures(step)
    single = _load(out_dir / "condense_instance.out")
    if single:
        summary["condense_instance"] = condense_instance_figures(single)
    compiled = _load(out_dir / "condense_compiled.out")
    if compiled:
        summary["condense_compiled"] = condense_instance_figures(compiled, reference=single)
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
