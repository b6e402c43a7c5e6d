"""Training throughput of the light SR networks through the real training path.

Each step is what ``idc.sr.train.train_sr`` does: a batch from ``PatchPairDataset`` (HDF5 patch
store read, aligned random crop, flips/rotations) via the resumable stream sampler and a
DataLoader, then ``train_step`` (forward, L1, backward, Adam) and the MultiStepLR step. The store
holds random patches written to a temporary folder (cost does not depend on pixel values).
Default: batch 4, LR 64 x 64 (HR 256), float32, CPU. Reports the median step time and the share
of it spent waiting for data.

    python bench/bench_train.py
    python bench/bench_train.py --models edsr_baseline_x4 --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc.archs import MODEL_PRESETS, build_model  # noqa: E402
from idc.data.store import write_patch_store  # noqa: E402
from idc.sr.config import TrainConfig  # noqa: E402
from idc.sr.data import PatchPairDataset, StreamSampler  # noqa: E402
from idc.sr.train import _amp_dtype, build_state, train_step  # noqa: E402

LIGHT_MODELS = ("edsr_baseline_x4", "swinir_light_x4", "mambairv2_light_x4")


def make_store(folder: Path, n: int, lr_size: int, scale: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (n, lr_size * scale, lr_size * scale, 3), dtype=np.uint8)
    lr = rng.integers(0, 256, (n, lr_size, lr_size, 3), dtype=np.uint8)
    return write_patch_store(folder / "bench.h5", lr, hr, np.arange(n), np.zeros((n, 2), np.int64), source="bench")


def bench_model(preset: str, store: Path, *, batch: int, gt_size: int, steps: int, device: torch.device,
                workers: int, amp: bool) -> dict:
    cfg = TrainConfig(model_name=preset, steps=steps + 1, batch_size=batch, gt_size=gt_size, lr=2e-4,
                      milestones=(250_000,), amp=amp)
    torch.manual_seed(cfg.seed)
    model = build_model(preset).to(device)
    amp_dtype = _amp_dtype(device, amp)
    state = build_state(model, cfg, amp_dtype=amp_dtype)
    dataset = PatchPairDataset(store, gt_size, seed=cfg.seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=StreamSampler(len(dataset), cfg.seed),
                        num_workers=workers, generator=torch.Generator().manual_seed(0))
    batches = iter(loader)
    step_times, data_times = [], []
    model.train()
    for step in range(1, steps + 2):  # step 1 is warm-up
        start = time.perf_counter()
        item = next(batches)
        lq, gt = item["lq"].to(device), item["gt"].to(device)
        fetched = time.perf_counter()
        train_step(model, lq, gt, state.optimizer, state.scaler, step=step, amp_dtype=amp_dtype)
        state.scheduler.step()
        end = time.perf_counter()  # train_step reads the loss value, which synchronises CUDA
        if step > 1:
            step_times.append(end - start)
            data_times.append(fetched - start)
    del batches
    median = float(np.median(step_times))
    return {"model": preset, "params": sum(p.numel() for p in model.parameters()), "seconds_per_step": median,
            "steps_per_second": 1.0 / median, "data_share": float(np.median(data_times)) / median}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(LIGHT_MODELS), choices=sorted(MODEL_PRESETS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-size", type=int, default=64, help="LR crop size (HR = 4x)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    scale = 4
    print(f"train_sr step (store read + crop/flip + fwd + L1 bwd + Adam), batch {args.batch}, "
          f"LR {args.lr_size}x{args.lr_size}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.workers} loader workers, "
          f"{platform.processor() or platform.machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Stored patches 8 px larger than the crop so the random crop has room to move.
        store = make_store(Path(tmp), 16, args.lr_size + 8, scale)
        for preset in args.models:
            row = bench_model(preset, store, batch=args.batch, gt_size=args.lr_size * scale, steps=args.steps,
                              device=device, workers=args.workers, amp=args.amp)
            rows.append(row)
            print(f"  {preset:22s} {row['params']:>11,d} params  {row['seconds_per_step']:8.3f} s/step  "
                  f"{row['steps_per_second']:8.3f} steps/s  data {100 * row['data_share']:4.1f} %", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
