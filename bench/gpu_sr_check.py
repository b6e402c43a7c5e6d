"""CUDA check of the SR training/testing engine (run on a GPU machine; a few minutes).

1. ``train_sr`` with bf16/fp16 autocast for the three light models at batch 16, LR 64 (HR 256):
   steps/s after warm-up, peak memory, finite loss. MambaIRv2 with the pure-PyTorch selective
   scan, then (path `mambairv2_light_x4_mamba_ssm`) with mamba-ssm's kernel where installed.
2. Interrupt (SIGUSR1) + resume on CUDA vs an uninterrupted run: largest weight difference
   (cuDNN kernels are not bit-deterministic, so on GPU this is a closeness check, not equality).

At `--scale cpu` (a smoke run of this script on a CPU): the same three architectures at a toy
width and depth (`TOY_KWARGS`), batch 2, LR 16 (HR 64), no loader workers.
One JSON line per measured path (each model's throughput, then the resume check) goes to
`--jsonl` as it is measured (bench/partlog.py).

    python bench/gpu_sr_check.py [--jsonl lines.jsonl] [--out results.json]
    python bench/gpu_sr_check.py --device cpu --scale cpu --steps 4
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import PartLog  # noqa: E402
from idc.archs import mambairv2 as mambairv2_module  # noqa: E402
from idc.archs.selective_scan import cuda_kernel, selective_scan  # noqa: E402
from idc.data.store import write_patch_store  # noqa: E402
from idc.sr.config import TrainConfig  # noqa: E402
from idc.sr.train import TrainingInterrupted, train_sr  # noqa: E402

LIGHT = ("edsr_baseline_x4", "swinir_light_x4", "mambairv2_light_x4")

# paper: the training crop of the paper's recipe (HR 256, batch 16); cpu: a smoke run's toy size.
SCALES = {
    "paper": dict(store_n=64, hr=256, batch=16, gt=256, workers=6, resume_batch=16, resume_gt=192, resume_workers=4),
    "cpu": dict(store_n=16, hr=64, batch=2, gt=64, workers=0, resume_batch=2, resume_gt=32, resume_workers=0),
}
# The presets' code paths at a width and depth a 2-core CPU trains in a fraction of a second per
# step (the light presets themselves take seconds per step there, MambaIRv2's scan most).
TOY_KWARGS = {
    "edsr_baseline_x4": dict(num_feat=16, num_block=2),
    "swinir_light_x4": dict(depths=[2], embed_dim=16, num_heads=[2]),
    "mambairv2_light_x4": dict(depths=[2], embed_dim=16, num_heads=[2], d_state=4, inner_rank=8, num_tokens=16,
                               window_size=8),
}


def make_store(folder: Path, n: int = 64, hr_size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (n, 16, 16, 3)).astype(np.float32)
    hr = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(0, 3, 1, 2), size=hr_size, mode="bicubic")
    hr = hr.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()
    lr_size = hr_size // 4
    lr = hr.reshape(n, lr_size, 4, lr_size, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    return write_patch_store(folder / "s.h5", lr, hr, np.arange(n), np.zeros((n, 2), np.int64), source="gpu check")


@contextlib.contextmanager
def scan_impl(impl: str) -> Iterator[None]:
    """MambaIRv2's selective scan forced to one implementation for the duration. The model calls
    `selective_scan` with impl="auto" (mamba-ssm's kernel wherever it is installed), so the
    pure-PyTorch scan on such a machine is reached only by rebinding the name the module calls."""
    original = mambairv2_module.selective_scan
    mambairv2_module.selective_scan = functools.partial(selective_scan, impl=impl)
    try:
        yield
    finally:
        mambairv2_module.selective_scan = original


def throughput(preset: str, store: Path, out: Path, steps: int, batch: int, device: str, gt_size: int = 256,
               workers: int = 6, model_kwargs: dict | None = None) -> dict:
    stamps: list[float] = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(model_name=preset, model_kwargs=model_kwargs or {}, steps=steps, batch_size=batch, gt_size=gt_size, lr=2e-4,
                      milestones=[steps // 2], ema_decay=0.999, val_every=10_000, checkpoint_every=10_000, seed=0,
                      amp=True, log_every=max(steps // 4, 1))
    train_sr(cfg, store_path=store, out_dir=out, num_workers=workers, device=device,
             step_callback=lambda s: stamps.append(time.perf_counter()))
    warm = min(5, steps - 2)
    rate = (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm])
    log = json.loads((out / "train_log.json").read_text())
    return {"model": preset, "batch": batch, "steps_per_s": rate, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
            "last_loss": log["loss_curve"][-1][1], "amp": log["settings"]["amp_dtype"]}


def resume_check(store: Path, root: Path, device: str, steps: int, batch: int = 16, gt_size: int = 192,
                 workers: int = 4, model_kwargs: dict | None = None) -> dict:
    cfg = TrainConfig(model_name="edsr_baseline_x4", model_kwargs=model_kwargs or {}, steps=steps, batch_size=batch, gt_size=gt_size, lr=2e-4,
                      milestones=[steps * 3 // 4], val_every=10_000, checkpoint_every=steps // 3, seed=1, amp=True,
                      log_every=10)
    kw = dict(store_path=store, num_workers=workers, device=device)
    train_sr(cfg, out_dir=root / "full", **kw)

    def stop(step: int) -> None:
        if step == steps // 2:
            signal.raise_signal(signal.SIGUSR1)

    try:
        train_sr(cfg, out_dir=root / "split", step_callback=stop, **kw)
    except TrainingInterrupted as err:
        interrupted_at = err.step
    train_sr(cfg, out_dir=root / "split", **kw)
    a, b = load_file(str(root / "full" / "model.safetensors")), load_file(str(root / "split" / "model.safetensors"))
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    la = json.loads((root / "full" / "train_log.json").read_text())["loss_curve"]
    lb = json.loads((root / "split" / "train_log.json").read_text())["loss_curve"]
    return {"interrupted_at": interrupted_at, "max_weight_diff": diff, "loss_curve_full": la, "loss_curve_resumed": lb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write every figure here as one JSON object at the end")
    parser.add_argument("--jsonl", type=Path, help="one JSON line per path, written as it is measured")
    parser.add_argument("--scale", choices=sorted(SCALES), default="paper")
    parser.add_argument("--steps", type=int, default=None, help="steps per model (default 25 paper / 4 cpu)")
    parser.add_argument("--device", default="cuda", help="cpu for a smoke run of this script")
    parser.add_argument("--models", nargs="+", default=list(LIGHT))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sc = SCALES[args.scale]
    toy = TOY_KWARGS if args.scale == "cpu" else {}
    steps = args.steps or (25 if args.scale == "paper" else 4)
    results: dict = {"torch": torch.__version__,
                     "gpu": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    # MambaIRv2 with the pure-PyTorch selective scan (what runs everywhere), then with mamba-ssm's
    # kernel where it is installed.
    with_kernel = ["mambairv2_light_x4_mamba_ssm"] if "mambairv2_light_x4" in args.models else []
    log = PartLog(args.jsonl, plan=[*args.models, *with_kernel, "resume"], scale=args.scale, steps=steps, batch=sc["batch"],
                  gt_size=sc["gt"], toy_kwargs=toy or None, **results)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = make_store(root, sc["store_n"], sc["hr"])
        results["throughput"] = []
        runs = [(preset, preset, "vectorised") for preset in args.models]
        if with_kernel:
            if args.device != "cuda":
                log.skip(with_kernel[0], "mamba-ssm's kernel runs on CUDA only")
            elif cuda_kernel() is None:
                log.skip(with_kernel[0], "mamba-ssm's compiled kernel is not installed")
            else:
                runs.append((with_kernel[0], "mambairv2_light_x4", "cuda"))
        for name, preset, scan in runs:
            with log.path(name) as row, scan_impl(scan):
                t0 = time.perf_counter()
                row.update(throughput(preset, store, root / name, steps, sc["batch"], args.device, sc["gt"],
                                      sc["workers"], toy.get(preset)))
                row["scan"] = "mamba-ssm kernel" if scan == "cuda" else "pure PyTorch"
                row["wall_s"] = time.perf_counter() - t0
                results["throughput"].append(row)
                print(json.dumps(row), flush=True)
        with log.path("resume") as rec:
            results["resume"] = resume_check(store, root, args.device, 2 * steps, sc["resume_batch"], sc["resume_gt"],
                                             sc["resume_workers"], toy.get("edsr_baseline_x4"))
            rec.update({k: v for k, v in results["resume"].items() if "curve" not in k})
            print(json.dumps(rec), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return log.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
