"""Seconds to select a ratio of N patches with each baseline under the paper's 20-group protocol.

Default size is the paper's: N = 120,765 patches, r = 10% (12,076 kept), D = 60 (SwinIR-light
pooled teacher features), LR patches 64 x 64 for DCSR. Features are a Gaussian mixture and the
patches synthetic textures (flat, striped, noisy), so the figures measure the algorithms, not a
data set. Herding and K-Center run on every device given (CPU, and CUDA when present); Random
and DCSR (NumPy + scikit-learn) on the CPU only. `--pixels-n` adds Herding and K-Center on raw
pixel features (64 * 64 * 3 = 12,288 values) at a reduced N.

    python bench/bench_select.py                    # paper size
    python bench/bench_select.py --n 12076          # reduced size
    python bench/bench_select.py --pixels-n 12076 --methods herding kcenter
    python bench/bench_select.py --scale cpu --devices cpu --jsonl lines.jsonl   # smoke run (N = 2,000)

`--jsonl`: one JSON line per method and device as it is timed (bench/partlog.py); a CUDA device
asked for on a machine without one is recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import PartLog  # noqa: E402
from idc.counting import n_for_ratio  # noqa: E402
from idc.select import select_in_splits  # noqa: E402

DEVICE_METHODS = ("herding", "kcenter")


def mixture_features(n: int, dim: int, rng: np.random.Generator, n_modes: int = 50) -> np.ndarray:
    centres = rng.normal(scale=3.0, size=(n_modes, dim))
    return (centres[rng.integers(n_modes, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def synthetic_patches(n: int, size: int, rng: np.random.Generator, chunk: int = 4096) -> np.ndarray:
    """Flat, striped and noisy RGB patches (uint8), made chunk by chunk to bound memory."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        level = rng.uniform(30, 220, size=(m, 1, 1)).astype(np.float32)
        angle = rng.uniform(0, np.pi, size=(m, 1, 1)).astype(np.float32)
        freq = rng.uniform(0.05, 1.5, size=(m, 1, 1)).astype(np.float32)
        stripes = rng.uniform(0, 60, size=(m, 1, 1)).astype(np.float32)
        noise = rng.uniform(0, 30, size=(m, 1, 1)).astype(np.float32)
        gray = (level + stripes * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
                + noise * rng.standard_normal((m, size, size), dtype=np.float32))
        tint = rng.uniform(0.85, 1.15, size=(m, 1, 1, 3)).astype(np.float32)
        out[start : start + m] = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return out


def time_selection(method: str, features: np.ndarray, n_total: int, args: argparse.Namespace,
                   images: np.ndarray | None = None, device: str | None = None) -> float:
    hparams = {"device": device} if device is not None else {}
    if device is not None and device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    chosen = select_in_splits(method, features, n_total, rng=np.random.default_rng(args.seed),
                              n_splits=args.n_splits, images=images, **hparams)
    if device is not None and device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    assert chosen.size == n_total
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="number of patches (default the paper's 120,765; "
                                                             "2,000 at --scale cpu)")
    parser.add_argument("--scale", choices=["paper", "cpu"], default="paper")
    parser.add_argument("--dim", type=int, default=60, help="feature width (SwinIR-light: 60)")
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--n-splits", type=int, default=20)
    parser.add_argument("--patch", type=int, default=64, help="LR patch side for DCSR and pixels")
    parser.add_argument("--pixels-n", type=int, default=0, help="also time pixel features at this N (0: skip)")
    parser.add_argument("--methods", nargs="+", default=["random", "herding", "kcenter", "dcsr"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when present")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--jsonl", type=Path, help="one JSON line per method and device, written as it is timed")
    args = parser.parse_args()
    args.n = args.n or (2000 if args.scale == "cpu" else 120_765)
    logging.basicConfig(level=logging.WARNING)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rng = np.random.default_rng(args.seed)
    machine = {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(f"# machine: {machine}")
    rows: list[dict[str, object]] = []

    def runs(pixels: bool) -> list[tuple[str, str]]:
        methods = [m for m in args.methods if m in DEVICE_METHODS] if pixels else args.methods
        return [(m, d) for m in methods for d in (devices if m in DEVICE_METHODS else ["cpu"])]

    def path_name(method: str, device: str, pixels: bool) -> str:
        return f"{method}_{device}" + ("_pixels" if pixels else "")

    plan = [path_name(m, d, False) for m, d in runs(False)]
    plan += [path_name(m, d, True) for m, d in runs(True)] if args.pixels_n else []
    log = PartLog(args.jsonl, plan=plan, **machine, ratio=args.ratio)

    def report(method: str, device: str, n: int, dim: int | str, seconds: float) -> dict[str, object]:
        n_total = n_for_ratio(n, args.ratio)
        row = {"method": method, "device": device, "N": n, "D": dim, "n": n_total,
               "n_splits": args.n_splits, "seconds": round(seconds, 3)}
        rows.append(row)
        print(f"{method:8s} {device:5s} N={n:7d} D={dim!s:>6s} n={n_total:6d} splits={args.n_splits:2d} "
              f"{seconds:9.2f} s", flush=True)
        return row

    def measure(method: str, device: str, pixels: bool, features: np.ndarray, n: int, n_total: int,
                images: np.ndarray | None = None) -> None:
        name = path_name(method, device, pixels)
        if device.startswith("cuda") and not torch.cuda.is_available():
            log.skip(name, "no CUDA device on this machine")
            return
        with log.path(name) as rec:
            dim = f"{args.patch}px" if method == "dcsr" else features.shape[1]
            on = device if method in DEVICE_METHODS else None
            rec.update(report(method, device, n, dim, time_selection(method, features, n_total, args, images=images,
                                                                     device=on)))

    n_total = n_for_ratio(args.n, args.ratio)
    features = mixture_features(args.n, args.dim, rng)
    for method, device in runs(False):
        if method == "dcsr":
            images = synthetic_patches(args.n, args.patch, rng)
            measure(method, device, False, np.zeros((args.n, 0), dtype=np.float32), args.n, n_total, images)
            del images
        else:
            measure(method, device, False, features, args.n, n_total)

    if args.pixels_n:
        images = synthetic_patches(args.pixels_n, args.patch, rng)
        pixels = images.reshape(args.pixels_n, -1).astype(np.float32) / 255.0
        n_pixels_total = n_for_ratio(args.pixels_n, args.ratio)
        for method, device in runs(True):
            measure(method, device, True, pixels, args.pixels_n, n_pixels_total)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return log.exit_code()


if __name__ == "__main__":
    sys.exit(main())
