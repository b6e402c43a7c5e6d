"""GPU check of condense_instance at the paper scale (N=151, 64x64, SwinIR-light, defaults): every
execution path (TF32, fused attention, channels-last, bf16 autocast, frequency pool, the whole GPU
switch set, deterministic algorithms, the plain path) timed in one process, with the final
held-out MMD of each beside that of another seed (the replicate spread).

Runs a shortened schedule (warm-up and assignment events compressed into the first steps) so the
timed steps include grouping, pairing and all three losses; checks determinism for one seed on the
GPU (bit-exactness is not promised there) and a resume from a checkpoint. Each path's figures go to
`--jsonl` as one JSON line as soon as it ends (bench/partlog.py), so a run stopped at its time
limit keeps the paths it finished; the whole object is printed at the end as well.

`--compile-mode`: only the fast path, single and packed, with torch.compile; each runs in a child
process that is killed at `--deadline` (compiling can take minutes, and the condensation's stop
handler waits for a step boundary that compilation never reaches).

Off CUDA, paths that need it (TF32, the GPU switch set that includes it, CUDA graphs of
`reduce-overhead`) are recorded as skipped. `--scale cpu`: a smoke run of this script on a CPU
(12 patches of 16x16, reduced features, the SwinIR toy extractor, 12 steps).

    python bench/gpu_condense_check.py 100 --jsonl lines.jsonl
    python bench/gpu_condense_check.py --device cpu --scale cpu --jsonl lines.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.condense_step import build_extractor  # noqa: E402
from bench.partlog import PartLog, run_in_child  # noqa: E402
from idc.condense.condenser import condense_instance, condense_instances  # noqa: E402
from idc.condense.config import CondenseConfig  # noqa: E402

# The GPU switch set (config/gpu.yaml): every execution switch that keeps the result up to float
# rounding, bf16 autocast of the extractor, and the frequency pool.
GPU_SET = {"fused_attention": True, "allow_tf32": True, "channels_last": True, "autocast_bf16": True, "freq_pool": 16}

# The reduced features of --small (and of --scale cpu): a short schedule at toy cost.
SMALL = dict(channels=32, num_freqs=64, groups=4, kernel=3, warmup=2, assign_interval=1, assign_times=3, log_every=5)

RUNS: list[tuple[str, dict[str, Any]]] = [
    ("fast", {}), ("fast_seed1", {}), ("fast_tf32", {"allow_tf32": True}),
    ("fast_fused_attention", {"fused_attention": True}),
    ("fast_fused_attention_tf32", {"fused_attention": True, "allow_tf32": True}),
    ("fast_channels_last", {"channels_last": True}), ("fast_bf16", {"autocast_bf16": True}),
    ("fast_pool16", {"freq_pool": 16}), ("gpu_set", GPU_SET), ("fast_deterministic", {"deterministic": True}),
    ("plain", {"fast_path": False})]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def real_patches(n_real: int, size: int, seed: int = 0) -> torch.Tensor:
    """One instance's real patches, the same in every process for the same arguments."""
    return torch.rand(n_real, 3, size, size, generator=torch.Generator().manual_seed(seed))


def base_config(steps: int, small: bool) -> dict[str, Any]:
    # The 26 assignment events (25 grouping, 1 pairing) end within the first half of the steps, so
    # logged records (every 50 steps) fall after the last one: at 100 steps events every 5 steps
    # would end at step 95 and leave a single record (the last) to time the settled steps by.
    interval = max(1, min(5, (steps // 2 - 20) // 26))
    base = dict(steps=steps, warmup=20, assign_interval=interval, assign_times=25, log_every=50,
                milestones=[steps - 20])
    if small:
        base.update(SMALL, milestones=[steps - 2])
    return base


def settled_ms(cfg: CondenseConfig, recs: list[dict]) -> float | None:
    """ms/step from the logged clock between the first record after the last event and the end
    (None with fewer than two such records)."""
    settled = [r for r in recs if r["step"] >= cfg.assignment_steps()[-1]]
    if len(settled) < 2:
        return None
    a, b = settled[0], recs[-1]
    return (b["seconds"] - a["seconds"]) * 1000 / max(1, b["step"] - a["step"])


def cuda_only(extra: dict[str, Any], compile_mode: str | None = None) -> str | None:
    """Why a path cannot run off CUDA, or None."""
    if extra.get("allow_tf32"):
        return "TF32 is a CUDA feature"
    if compile_mode in ("reduce-overhead", "max-autotune"):
        return f"CUDA graphs (compile_mode {compile_mode}) need CUDA"
    return None


def single(real: torch.Tensor, ext: torch.nn.Module, cfg: CondenseConfig, seed: int,
           dev: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
    sync(dev)
    t0 = time.perf_counter()
    syn, log = condense_instance(real, ext, cfg, seed=seed, device=dev, progress=False)
    sync(dev)
    b = log["steps"][-1]
    ms = settled_ms(cfg, log["steps"])
    return syn, {"wall_s": round(time.perf_counter() - t0, 2), "ms_per_step_settled": ms and round(ms, 2),
                 "final": b, "paired": log["groups"]["paired"], "n_synthetic": log["n_synthetic"],
                 "synthetic_range": [float(syn.min()), float(syn.max())], "diag_mmd": b.get("diag_mmd")}


def packed(reals: list[torch.Tensor], ext: torch.nn.Module, cfg: CondenseConfig,
           dev: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
    """Several instances in one loop: one extractor pass over all synthetic patches."""
    sync(dev)
    t0 = time.perf_counter()
    res = condense_instances(reals, ext, cfg, seeds=list(range(len(reals))), device=dev, progress=False)
    sync(dev)
    ms = settled_ms(cfg, res[0][1]["steps"])
    return res[0][0], {"wall_s": round(time.perf_counter() - t0, 2), "ms_per_step_settled": ms and round(ms, 2),
                       "ms_per_instance_step": ms and round(ms / len(reals), 2)}


def compiled_child(settings: dict[str, Any], pack: int, n_real: int, size: int, extractor: str,
                   device: str) -> dict[str, Any]:
    """One compiled path in a child process (run_in_child): single (pack 1) or packed. Returns the
    path's figures and the first instance's synthetic patches as a numpy array."""
    dev = torch.device(device)
    ext, real = build_extractor(extractor, size), real_patches(n_real, size)
    cfg = CondenseConfig.from_dict(settings)
    if pack > 1:
        reals = [real_patches(n_real, size, seed=k) for k in range(pack)]
        syn, rec = packed(reals, ext, cfg, dev)
    else:
        syn, rec = single(real, ext, cfg, 0, dev)
    return {"record": rec, "syn": syn.numpy()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("steps", nargs="?", type=int, default=None, help="steps per path (default 200; 12 at --scale cpu)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scale", choices=["paper", "cpu"], default="paper",
                    help="cpu: --small at 12 patches of 16x16 with the SwinIR toy extractor")
    ap.add_argument("--n-real", type=int, default=None, help="real patches (default 151; 12 at --scale cpu)")
    ap.add_argument("--size", type=int, default=None, help="patch side (default 64; 16 at --scale cpu)")
    ap.add_argument("--extractor", choices=["swinir_light", "swinir_toy"], default=None)
    ap.add_argument("--small", action="store_true", help="reduced features (smoke test of this script on a CPU)")
    ap.add_argument("--pack", type=int, default=4, help="instances packed in one loop for the packed timing")
    ap.add_argument("--compile-mode", default=None,
                    help="only time the fast path (single and packed) with torch.compile in this mode")
    ap.add_argument("--fused-attention", action="store_true", help="with --compile-mode: compile the SDPA path")
    ap.add_argument("--gpu-set", action="store_true", help="with --compile-mode: the whole GPU switch set as well")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds from the start by which the compiled paths' child processes are killed")
    ap.add_argument("--jsonl", type=Path, help="one JSON line per path, written as it ends")
    args = ap.parse_args()
    t_start = time.monotonic()
    cpu_scale = args.scale == "cpu"
    steps = args.steps or (12 if cpu_scale else 200)
    n_real = args.n_real or (12 if cpu_scale else 151)
    size = args.size or (16 if cpu_scale else 64)
    extractor = args.extractor or ("swinir_toy" if cpu_scale else "swinir_light")
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    out: dict = {"device": name, "torch": torch.__version__, "steps": steps, "n_real": n_real, "size": size,
                 "extractor": extractor}
    base = base_config(steps, args.small or cpu_scale)
    pack_name = f"fast_pack{args.pack}" if args.pack > 1 else None
    if args.compile_mode:
        base.update(compile_extractor=True, compile_mode=args.compile_mode, fused_attention=args.fused_attention)
        if args.gpu_set:
            base.update(GPU_SET)
        plan = ["fast"] + ([pack_name] if pack_name else [])
    else:
        plan = ["fast", "fast_rerun", "fast_resume"] + [n for n, _ in RUNS[1:]] + ([pack_name] if pack_name else [])
    log = PartLog(args.jsonl, plan=plan, **out, compile_mode=args.compile_mode)

    def off_cuda(extra: dict[str, Any]) -> str | None:
        return None if dev.type == "cuda" else cuda_only(extra, args.compile_mode)

    syn_fast = None  # the fast path's patches: what the other paths are compared against

    if args.compile_mode:
        deadline_at = t_start + (args.deadline if args.deadline is not None else 3600)
        for path, pack in [("fast", 1)] + ([(pack_name, args.pack)] if pack_name else []):
            why = off_cuda(base)
            if why:
                log.skip(path, why)
                continue
            with log.path(path) as rec:
                status, value = run_in_child(compiled_child, dict(settings=base, pack=pack, n_real=n_real, size=size,
                                                                  extractor=extractor, device=args.device),
                                             deadline_at - time.monotonic())
                if status != "ok":
                    rec.update({"status": status, "reason": value})
                    continue
                rec.update(value["record"])
                if path == "fast":
                    syn_fast = value["syn"]
                elif syn_fast is not None:
                    rec["max_abs_diff_vs_single"] = float(np.abs(value["syn"] - syn_fast).max())
                out[path] = rec
        print(json.dumps(out, indent=1))
        return log.exit_code()

    ext, real = build_extractor(extractor, size), real_patches(n_real, size)
    for path, extra in RUNS:
        why = off_cuda(extra)
        if why:
            log.skip(path, why)
            continue
        cfg = CondenseConfig.from_dict({**base, **extra})
        seed = 1 if path == "fast_seed1" else 0  # another seed: the replicate spread of the diagnostics
        with log.path(path) as rec:
            syn, figures = single(real, ext, cfg, seed, dev)
            rec.update(figures)
            if path == "fast":
                syn_fast = syn
            elif (path.startswith("fast_") or path == "gpu_set") and syn_fast is not None:
                rec["max_abs_diff_vs_fast"] = float((syn - syn_fast).abs().max())
            if path == "fast_deterministic":
                again, _ = condense_instance(real, ext, cfg, seed=0, device=dev, progress=False)
                rec["rerun_max_abs_diff"] = float((again - syn).abs().max())
            out[path] = rec
        if path == "fast" and syn_fast is not None:
            with log.path("fast_rerun") as rec:
                syn2, _ = condense_instance(real, ext, cfg, seed=0, device=dev, progress=False)
                rec["rerun_max_abs_diff"] = float((syn2 - syn_fast).abs().max())
                out["fast"]["rerun_max_abs_diff"] = rec["rerun_max_abs_diff"]
            with log.path("fast_resume") as rec:
                rec.update(resume_check(real, ext, base, steps, dev, syn_fast))
                out["fast"].update(rec)
    if pack_name:
        with log.path(pack_name) as rec:
            cfg = CondenseConfig.from_dict(base)
            reals = [real_patches(n_real, size, seed=k) for k in range(args.pack)]
            syn0, figures = packed(reals, ext, cfg, dev)
            rec.update(figures)
            if syn_fast is not None:
                rec["max_abs_diff_vs_single"] = float((syn0 - syn_fast).abs().max())
            out[pack_name] = rec
    print(json.dumps(out, indent=1))
    return log.exit_code()


def resume_check(real: torch.Tensor, ext: torch.nn.Module, base: dict[str, Any], steps: int, dev: torch.device,
                 ref: torch.Tensor) -> dict[str, Any]:
    """A run stopped after its mid-way checkpoint and resumed, against the uninterrupted `ref`."""
    crash_at = steps // 2 + min(10, steps // 4)  # a logged step past the checkpoint

    class Stop(Exception):
        pass

    def crash(r: dict) -> None:
        if r["step"] >= crash_at:
            raise Stop

    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "c.ckpt"
        short = CondenseConfig.from_dict({**base, "steps": steps, "checkpoint_every": steps // 2})
        try:
            condense_instance(real, ext, short, seed=0, device=dev, progress=False, resume_path=ck, on_log=crash)
        except Stop:
            pass
        syn3, log3 = condense_instance(real, ext, short, seed=0, device=dev, progress=False, resume_path=ck)
    return {"resume_from": log3["resumed_from_step"], "resume_max_abs_diff": float((syn3 - ref).abs().max())}


if __name__ == "__main__":
    sys.exit(main())
