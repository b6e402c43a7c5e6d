"""Milliseconds per IDC optimisation step, with a breakdown, for the plain and the fast path.

Every figure comes from the condenser's own loop (`idc.condense.condenser.condense_instance`, the
loop the workflow runs) through its timing hooks (`idc.condense.timing.StepTimer`), with every
path's switch set as a `CondenseConfig` setting: `fast_path`, `allow_tf32`, `fused_attention`,
`freq_resample_every`, `compile_extractor`.

Paper scale (`--scale paper`): N=151 real 64x64 LR patches, n=16 synthetic (ceil(0.1 N)),
SwinIR-light x4 extractor (randomly initialised: timing does not depend on the weights), RLFF with
k=7 and 256 sampled channels, p=4, 1024 frequencies, 16 groups. Reduced scale (`--scale cpu`):
N=40 16x16 patches (n=4), 64 channels, 256 frequencies, 16 groups, same extractor.

The step is timed in its heaviest regime: no warm-up, one grouping event at step 0 and a pairing
event at step 1, so that every later step has every synthetic local patch grouped and paired.
One run per path: `--warmup` steps (2 at least: the events), then `--steps` steps timed whole
(one device synchronisation per step: `ms_per_step`), then `--steps` steps timed part by part
(`breakdown_ms`, a synchronisation per part), then the last step, which logs. The plain path
loops over the groups in Python; the fast path uses the vectorised group/pair losses; the two are
checked to give equal losses over the first steps of the loop.

One JSON line per path goes to `--jsonl` as it is measured (bench/partlog.py); `--compile` times
the compiled path in a child process killed at `--compile-seconds`.

    python bench/condense_step.py --scale cpu --fused-attention --json
    python bench/condense_step.py --scale cpu --extractor swinir_toy --jsonl lines.jsonl
    python bench/condense_step.py --scale paper --device cuda --tf32 --fused-attention --json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import PartLog, run_in_child  # noqa: E402
from idc.condense.condenser import condense_instance  # noqa: E402
from idc.condense.config import CondenseConfig  # noqa: E402
from idc.condense.extractor import FeatureCall, frozen_extractor  # noqa: E402
from idc.condense.timing import StepTimer  # noqa: E402
from idc.device import resolve_device  # noqa: E402

SCALES = {
    "paper": dict(n_real=151, size=64, channels=256, num_freqs=1024, groups=16, kernel=7, patch=4),
    "cpu": dict(n_real=40, size=16, channels=64, num_freqs=256, groups=16, kernel=7, patch=4),
}
# The heaviest regime from step 2 on (see the docstring); no diagnostics, snapshots or
# checkpoints, and one log record at each end of the run. ceil_per_image: n = ceil(0.1 N), the
# larger of the two counts an image of N patches can get under the equal budget (floor or ceil of
# r N), as the timings in docs/performance.md use.
REGIME = dict(warmup=0, assign_times=1, assign_interval=1, budget="ceil_per_image", diagnostics=False,
              snapshot_patches=0, checkpoint_every=0, log_every=10**6, milestones=[10**6 - 1])
EVENT_STEPS = 2  # steps 0 and 1 hold the events: never timed

# The product's SwinIR at a toy width and depth: a smoke run on a CPU times the same code paths.
SWINIR_TOY = dict(upscale=4, in_chans=3, img_range=1.0, depths=[2], embed_dim=16, num_heads=[2], window_size=8,
                  mlp_ratio=2.0, upsampler="pixelshuffledirect", resi_connection="1conv")


def build_extractor(name: str, size: int) -> torch.nn.Module:
    from idc.archs import build_model

    torch.manual_seed(0)
    if name == "swinir_toy":
        return build_model("swinir", img_size=size, **SWINIR_TOY)
    return build_model("swinir_light_x4", img_size=size)


def bench_config(scale: str, steps: int, **switches: Any) -> CondenseConfig:
    """The product's settings at `scale` in the timed regime, with a path's switches."""
    s = SCALES[scale]
    return CondenseConfig.from_dict({k: s[k] for k in ("channels", "num_freqs", "groups", "kernel", "patch")}
                                    | REGIME | {"steps": steps} | switches)


def real_patches(scale: str, device: torch.device, seed: int = 0) -> torch.Tensor:
    s = SCALES[scale]
    return torch.rand(s["n_real"], 3, s["size"], s["size"], generator=torch.Generator().manual_seed(seed)).to(device)


def info(scale: str, extractor: str) -> dict[str, Any]:
    s, cfg = SCALES[scale], bench_config(scale, 1)
    ext = build_extractor(extractor, s["size"])
    return {"n_real": s["n_real"], "n_synthetic": cfg.n_synthetic(s["n_real"]), "size": s["size"],
            "channels": cfg.channels, "num_freqs": cfg.num_freqs, "groups": cfg.groups, "patch": cfg.patch,
            "extractor": type(ext).__name__, "extractor_params": sum(p.numel() for p in ext.parameters()),
            "timed_loop": "idc.condense.condenser.condense_instance (StepTimer hooks)"}


def time_path(scale: str, device: torch.device, extractor: str, *, steps: int, warm: int,
              how: str = "auto", **switches: Any) -> dict[str, Any]:
    """One run of the product loop with `switches`: the step time over `steps` steps timed whole
    (`how`: mean on CUDA, over queued work; min on a CPU, the least disturbed step of a shared
    machine), the parts' means over the next `steps`, the first step (compilation, allocator
    growth) and the run's wall time, set-up included."""
    warm = max(warm, EVENT_STEPS)
    total = warm + 2 * steps + 1
    timer = StepTimer(device, parts_from=warm + steps)
    real = real_patches(scale, device)
    ext = build_extractor(extractor, SCALES[scale]["size"])
    t0 = time.perf_counter()
    condense_instance(real, ext, bench_config(scale, total, **switches), seed=0, device=device, progress=False,
                      timer=timer)
    run_s = time.perf_counter() - t0
    how = how if how != "auto" else ("mean" if device.type == "cuda" else "min")
    whole = timer.summary(warm, warm + steps, how=how)
    parts = timer.summary(warm + steps, warm + 2 * steps)
    return {"ms_per_step": whole["ms_per_step"], "breakdown_ms": parts["parts_ms"],
            "breakdown_step_ms": parts["ms_per_step"], "first_step_ms": round(timer.records[0]["step"], 1),
            "run_seconds": round(run_s, 2), "extractor_fwd_bwd_alone_ms":
                extractor_alone(ext, real[:bench_config(scale, 1).n_synthetic(len(real))], switches, reps=steps)}


def extractor_alone(ext: torch.nn.Module, patches: torch.Tensor, switches: dict[str, Any], *, reps: int) -> float:
    """The product extractor's forward + backward to its input on `patches` (its share of a step),
    ms per pass, with the path's attention, precision and TF32 switches (eager: a compiled path's
    graph belongs to its loop, and compiling again here would time compilation)."""
    device = patches.device
    cfg = CondenseConfig.from_dict({k: v for k, v in switches.items() if k != "compile_extractor"})
    # The product's own freezing, attention path, precision and TF32 switch, restored afterwards.
    with frozen_extractor(ext, cfg, device) as frozen:
        call = FeatureCall(frozen, cfg, device, tap=None)

        def once() -> None:
            x = patches.detach().clone().requires_grad_(True)
            call(x)[0].square().mean().backward()

        once()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            once()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return round((time.perf_counter() - t0) * 1000 / reps, 3)


def loss_differences(scale: str, device: torch.device, extractor: str, reference: dict[str, Any],
                     other: dict[str, Any], steps: int = 2) -> dict[str, float]:
    """Largest relative difference of each loss over the first `steps` steps of the product loop
    (grouping at step 0, pairing at 1: every loss by step 1), between two switch sets from the
    same start; later steps would add the compounding of the updates' own rounding."""
    records = []
    for switches in (reference, other):
        cfg = bench_config(scale, steps, **{**switches, "log_every": 1})
        _, log = condense_instance(real_patches(scale, device), build_extractor(extractor, SCALES[scale]["size"]),
                                   cfg, seed=0, device=device, progress=False)
        records.append(log["steps"])
    out = {}
    for key in ("loss_ins", "loss_group", "loss_pair"):
        out[key] = max(abs(a[key] - b[key]) / (abs(a[key]) + 1e-12) for a, b in zip(*records))
    return out


def _per_step_figures(rec: dict) -> dict:
    rec["steps_per_second"] = round(1000 / rec["ms_per_step"], 2)
    rec["minutes_per_20k_steps"] = round(rec["ms_per_step"] * 20000 / 60000, 1)
    return rec


def compiled_path(scale: str, device: str, extractor: str, steps: int, warm: int) -> dict:
    """The fast path with the extractor compiled (`compile_extractor`), timed in a fresh process
    (run_in_child: the parent kills it at its deadline, however long compiling takes). Compiling
    happens in the first step, which `first_step_ms` holds."""
    rec = time_path(scale, torch.device(device), extractor, steps=steps, warm=warm, compile_extractor=True)
    rec["compile_seconds"] = round(rec["first_step_ms"] / 1000, 1)
    return rec


def plan_paths(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], str]]:
    """(name, switches, how the step time is taken) of every timed path, in order."""
    paths = [] if args.skip_plain else [("plain", {"fast_path": False}, "auto")]
    paths.append(("fast", {}, "auto"))
    if args.tf32:
        paths.append(("fast_tf32", {"allow_tf32": True}, "auto"))
    if args.freq_reuse > 1:
        # Drawing steps cost more than cached ones: means over whole periods.
        paths.append((f"fast_freq_reuse{args.freq_reuse}", {"freq_resample_every": args.freq_reuse}, "mean"))
    if args.fused_attention:
        paths.append(("fast_fused_attention", {"fused_attention": True}, "auto"))
        if args.tf32:
            paths.append(("fast_fused_attention_tf32", {"fused_attention": True, "allow_tf32": True}, "auto"))
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--extractor", choices=["swinir_light", "swinir_toy"], default="swinir_light")
    ap.add_argument("--steps", type=int, default=None, help="timed steps, whole and by parts (default 20 GPU / 3 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help=f"steps before the timed ones (at least {EVENT_STEPS})")
    ap.add_argument("--compile", action="store_true",
                    help="also time the fast path with torch.compile (in a child process, see --compile-seconds)")
    ap.add_argument("--compile-seconds", type=float, default=300,
                    help="deadline of the compiled path's child process (compiling included)")
    ap.add_argument("--tf32", action="store_true", help="also time the fast path with TF32 (CUDA)")
    ap.add_argument("--freq-reuse", type=int, default=0, metavar="K",
                    help="also time the fast path drawing frequencies every K steps (freq_resample_every=K)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="also time the fast path with the extractor's window attention through SDPA")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--jsonl", type=Path, help="one JSON line per path, written as it is measured")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (20 if gpu else 3)
    warm = max(EVENT_STEPS, args.warmup if args.warmup is not None else (3 if gpu else EVENT_STEPS))
    paths = plan_paths(args)
    plan = ["check_fast_vs_plain"] + [name for name, _, _ in paths] + (["fast_compiled"] if args.compile else [])
    cpu_name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    head = {"scale": args.scale, "device": torch.cuda.get_device_name(device) if gpu else cpu_name,
            "torch": torch.__version__}
    log = PartLog(args.jsonl, plan=plan, **head)
    about = info(args.scale, args.extractor)
    out = {**head, **about, "timed_steps": steps, "warmup_steps": warm, "paths": {}}
    log.write({"info": {**about, "timed_steps": steps, "warmup_steps": warm}})
    with log.path("check_fast_vs_plain") as rec:
        rec["loss_relative_difference"] = out["loss_relative_difference_fast_vs_plain"] = loss_differences(
            args.scale, device, args.extractor, {}, {"fast_path": False})
    for name, switches, how in paths:
        if "allow_tf32" in switches and not gpu:
            log.skip(name, "TF32 is a CUDA feature: nothing to time on this device")
            continue
        with log.path(name) as rec:
            rec["switches"] = switches
            if switches.get("fused_attention"):
                diff = loss_differences(args.scale, device, args.extractor, {}, {"fused_attention": True})
                rec["loss_relative_difference_vs_explicit_attention"] = diff
                out.setdefault("loss_relative_difference_fused_vs_explicit_attention", diff)
            n = 2 * switches["freq_resample_every"] if "freq_resample_every" in switches else steps
            rec.update(_per_step_figures(time_path(args.scale, device, args.extractor, steps=n, warm=warm, how=how,
                                                   **switches)))
            out["paths"][name] = rec
    if args.compile:
        with log.path("fast_compiled") as rec:
            status, value = run_in_child(compiled_path, dict(scale=args.scale, device=str(device),
                                                             extractor=args.extractor, steps=steps, warm=warm),
                                         args.compile_seconds)
            if status == "ok":
                rec.update(_per_step_figures(value))
                out["paths"]["fast_compiled"] = rec
            else:
                rec.update({"status": status, "reason": value})
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    tol = 1e-3
    bad = {k: v for k, v in out.get("loss_relative_difference_fast_vs_plain", {}).items() if v > tol}
    bad.update({f"{k} (fused attention)": v for k, v in
                out.get("loss_relative_difference_fused_vs_explicit_attention", {}).items() if v > tol})
    if bad:
        print(f"fast and plain paths differ beyond {tol}: {bad}", file=sys.stderr)
        return 1
    return log.exit_code()


if __name__ == "__main__":
    sys.exit(main())
