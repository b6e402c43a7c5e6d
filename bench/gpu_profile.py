"""torch.profiler tables of one condensation step and of one SR training step per architecture.

Each table lists the top operators and kernels (15 by default) by self device time on CUDA, by
self CPU time on a CPU, of one step after warm-up steps, through the product's own code:

- `condense_step`: one step of the condenser's own loop (`condense_instance`, fast path), in the
  regime and at the sizes of `bench/condense_step.py` (every patch grouped and paired; paper
  scale on CUDA), and `condense_step_fused_attention` with the extractor's window attention
  through SDPA (`fused_attention`); the profiler starts and stops through the loop's step hook;
- `sr_<preset>`: `idc.sr.train.train_step` of EDSR, SwinIR and MambaIRv2 light x4 (batch 16, LR 64
  on CUDA, with the training's autocast), MambaIRv2 once with the pure-PyTorch selective scan and
  once with mamba-ssm's CUDA kernel (recorded as skipped where it is not installed or off CUDA).

Tables go to `--out-dir/profile_<path>.txt`, one JSON line per path to `--jsonl` (bench/partlog.py)
with the top five entries. `--scale cpu`: the toy sizes of bench/condense_step.py and
bench/gpu_sr_check.py, for a smoke run on a CPU.

    python bench/gpu_profile.py --out-dir prof --jsonl prof/profile.jsonl
    python bench/gpu_profile.py --device cpu --scale cpu --out-dir prof
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.condense_step import EVENT_STEPS, bench_config, build_extractor, real_patches  # noqa: E402
from bench.condense_step import SCALES as CONDENSE_SCALES
from bench.gpu_sr_check import LIGHT, TOY_KWARGS, scan_impl  # noqa: E402
from bench.partlog import PartLog  # noqa: E402
from idc.archs import build_model, resolve  # noqa: E402
from idc.archs.selective_scan import cuda_kernel  # noqa: E402
from idc.condense.condenser import condense_instance  # noqa: E402
from idc.condense.timing import StepTimer  # noqa: E402
from idc.sr.config import TrainConfig  # noqa: E402
from idc.sr.train import _amp_dtype, build_state, train_step  # noqa: E402

# paper: the sizes the GPU check measures throughput at; cpu: toy sizes for a smoke run.
SCALES = {
    "paper": dict(condense_scale="paper", extractor="swinir_light", batch=16, lr_size=64, toy=False),
    "cpu": dict(condense_scale="cpu", extractor="swinir_toy", batch=2, lr_size=16, toy=True),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def profile_step(step: Callable[[], None], device: torch.device, warmup: int) -> profile:
    """One `step` under the profiler, after `warmup` steps outside it (cuDNN's algorithm search,
    allocator growth and lazy initialisation stay out of the table)."""
    for _ in range(warmup):
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        sync(device)
    return prof


def profile_condense_step(scale: str, extractor: str, device: torch.device, warmup: int, **switches) -> profile:
    """Step `warmup` (after the events, at least step 2) of the condenser's loop under the profiler:
    the loop's step hook starts it after the steps before and stops it after that one."""
    warmup = max(warmup, EVENT_STEPS)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    prof = profile(activities=activities)
    done = [0]

    def after_step() -> None:  # the timer has synchronised the device at the step's end
        done[0] += 1
        if done[0] == warmup:
            prof.start()
        elif done[0] == warmup + 1:
            prof.stop()

    cfg = bench_config(scale, warmup + 2, **switches)
    condense_instance(real_patches(scale, device), build_extractor(extractor, CONDENSE_SCALES[scale]["size"]),
                      cfg, seed=0, device=device, progress=False, timer=StepTimer(device, after_step=after_step))
    return prof


def _self_time_us(event, cuda: bool) -> float:
    if not cuda:
        return float(event.self_cpu_time_total)
    # self_device_time_total since torch 2.4, self_cuda_time_total before
    return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))


def write_table(prof: profile, cuda: bool, path: Path, title: str, rows: int) -> list[dict]:
    """The profiler's table sorted by self device (CUDA) or self CPU time to `path`; returns the
    top five entries as dicts (name, self ms, calls)."""
    events = prof.key_averages()
    # "cuda" in a sort key reads as "device" in recent torch and as itself in older releases.
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = events.table(sort_by=sort_by, row_limit=rows)
    total = sum(_self_time_us(e, cuda) for e in events)
    path.write_text(f"{title}\nsorted by {sort_by}; total self {'device' if cuda else 'CPU'} time "
                    f"{total / 1000:.2f} ms\n\n{table}\n")
    top = sorted(events, key=lambda e: _self_time_us(e, cuda), reverse=True)[:5]
    return [{"name": e.key, "self_ms": round(_self_time_us(e, cuda) / 1000, 3), "calls": e.count} for e in top]


def sr_step(preset: str, device: torch.device, batch: int, lr_size: int, toy: bool) -> Callable[[], None]:
    """One training step of `preset` (idc.sr.train.train_step, the training loop's own step) on a
    fixed random batch."""
    arch, kwargs = resolve(preset, **(TOY_KWARGS.get(preset, {}) if toy else {}))
    torch.manual_seed(0)
    model = build_model(arch, **kwargs).to(device).train()
    cfg = TrainConfig(model_name=preset, batch_size=batch, gt_size=lr_size * 4, amp=True)
    amp = _amp_dtype(device, cfg.amp)
    state = build_state(model, cfg, amp_dtype=amp)
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(batch, 3, lr_size, lr_size, generator=gen).to(device)
    gt = torch.rand(batch, 3, lr_size * 4, lr_size * 4, generator=gen).to(device)
    counter = iter(range(10**9))

    def step() -> None:
        train_step(model, lq, gt, state.optimizer, state.scaler, step=next(counter), amp_dtype=amp)

    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scale", choices=sorted(SCALES), default="paper")
    ap.add_argument("--out-dir", type=Path, default=Path("."), help="where the profile_<path>.txt tables go")
    ap.add_argument("--jsonl", type=Path, help="one JSON line per profiled path, written as it ends")
    ap.add_argument("--rows", type=int, default=15, help="table rows")
    ap.add_argument("--warmup", type=int, default=2, help="steps before the profiled one")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sc = SCALES[args.scale]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sr_paths = [f"sr_{p}" for p in LIGHT] + ["sr_mambairv2_light_x4_mamba_ssm"]
    plan = ["condense_step", "condense_step_fused_attention", *sr_paths]
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    log = PartLog(args.jsonl, plan=plan, device=name, torch=torch.__version__, scale=args.scale,
                  sorted_by="self device time" if cuda else "self CPU time", rows=args.rows)

    def record(path: str, step: Callable[[], None] | Callable[[], profile], title: str, rec: dict,
               profiled: bool = False) -> None:
        t0 = time.perf_counter()
        prof = step() if profiled else profile_step(step, device, args.warmup)
        table = args.out_dir / f"profile_{path}.txt"
        rec["top"] = write_table(prof, cuda, table, f"{title} ({name}, torch {torch.__version__})", args.rows)
        rec["table"] = table.name
        rec["profiled_seconds"] = round(time.perf_counter() - t0, 2)

    for path, switches, title in (
            ("condense_step", {}, "one condensation step, fast path"),
            ("condense_step_fused_attention", {"fused_attention": True},
             "one condensation step, fast path, attention through SDPA")):
        with log.path(path) as rec:
            rec["switches"] = switches
            record(path, functools.partial(profile_condense_step, sc["condense_scale"], sc["extractor"], device,
                                           args.warmup, **switches), title, rec, profiled=True)
        if cuda:
            torch.cuda.empty_cache()

    shape = f"batch {sc['batch']}, LR {sc['lr_size']}x{sc['lr_size']}" + (", toy width" if sc["toy"] else "")
    for preset in LIGHT:
        path = f"sr_{preset}"
        with log.path(path) as rec, scan_impl("vectorised"):
            rec["shape"] = shape
            step = sr_step(preset, device, sc["batch"], sc["lr_size"], sc["toy"])
            scan = " (pure-PyTorch selective scan)" if "mambairv2" in preset else ""
            record(path, step, f"one SR training step of {preset}{scan}, {shape}", rec)
            del step
        if cuda:
            torch.cuda.empty_cache()
    path = "sr_mambairv2_light_x4_mamba_ssm"
    if not cuda:
        log.skip(path, "mamba-ssm's kernel runs on CUDA only")
    elif cuda_kernel() is None:
        log.skip(path, "mamba-ssm's compiled kernel is not installed")
    else:
        with log.path(path) as rec, scan_impl("cuda"):
            rec["shape"] = shape
            step = sr_step("mambairv2_light_x4", device, sc["batch"], sc["lr_size"], sc["toy"])
            record(path, step, f"one SR training step of mambairv2_light_x4 (mamba-ssm's scan kernel), {shape}", rec)
    return log.exit_code()


if __name__ == "__main__":
    sys.exit(main())
