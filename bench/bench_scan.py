"""Selective scan forward+backward: vectorised pure-PyTorch vs the sequential loop (and CUDA).

Shapes default to one ASSM scan of MambaIRv2-light x4 (d_inner = 48 channels, d_state N = 8,
grouped B/C with G = 1, delta_bias + softplus as the model calls it) at sequence length 1024
(a 32 x 32 token grid). Prints seconds per forward+backward and the speed-up.

    python bench/bench_scan.py                       # B=1 D=48 N=8 L=1024
    python bench/bench_scan.py --batch 4 --length 4096 --skip-sequential --threads 1
    python bench/bench_scan.py --scale cpu --device cpu --jsonl lines.jsonl   # smoke run (L=256)

`--jsonl`: one JSON line per implementation as it is timed (bench/partlog.py); mamba-ssm's CUDA
kernel is recorded as skipped where it is not installed or the device is not CUDA.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partlog import PartLog  # noqa: E402
from idc.archs.selective_scan import (  # noqa: E402
    cuda_kernel,
    selective_scan,
    selective_scan_sequential,
    selective_scan_vectorised,
)


def make_inputs(batch: int, dim: int, n: int, length: int, device: str, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    tensors = [
        randn(batch, dim, length),                                   # u
        randn(batch, dim, length) * 0.5,                             # delta (before bias + softplus)
        -torch.arange(1, n + 1, dtype=torch.float32).repeat(dim, 1),  # A (S4D-real)
        randn(batch, 1, n, length),                                  # B
        randn(batch, 1, n, length),                                  # C
        torch.ones(dim),                                             # D
        torch.log(torch.expm1(torch.full((dim,), 0.01))),            # delta_bias: softplus -> 0.01
    ]
    return [t.to(device).requires_grad_(True) for t in tensors]


def time_fwd_bwd(fn, inputs: list[torch.Tensor], repeats: int, warmup: int = 1) -> float:
    u, delta, A, B, C, D, bias = inputs

    def step() -> None:
        out = fn(u, delta, A, B, C, D, delta_bias=bias, delta_softplus=True)
        out.sum().backward()

    for _ in range(warmup):
        step()
    if u.is_cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if u.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]  # median: robust to other processes on shared cores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dim", type=int, default=48, help="d_inner of the scan (48 in MambaIRv2-light)")
    parser.add_argument("--state", type=int, default=8, help="d_state N (8 in MambaIRv2-light)")
    parser.add_argument("--length", type=int, default=None, help="sequence length (default 1024; 256 at --scale cpu)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; 3 at --scale cpu)")
    parser.add_argument("--scale", choices=["paper", "cpu"], default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--jsonl", type=Path, help="one JSON line per implementation, written as it is timed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.length = args.length or (256 if args.scale == "cpu" else 1024)
    args.repeats = args.repeats or (3 if args.scale == "cpu" else 5)

    inputs = make_inputs(args.batch, args.dim, args.state, args.length, args.device)
    shape = f"B={args.batch} D={args.dim} N={args.state} L={args.length}"
    print(f"selective scan forward+backward, {shape}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    plan = ["vectorised", "cuda_kernel"] + ([] if args.skip_sequential else ["sequential"])
    log = PartLog(args.jsonl, plan=plan, shape=shape, device=args.device, torch=torch.__version__,
                  threads=torch.get_num_threads())
    results: dict[str, float] = {}

    def timed(name: str, fn, repeats: int) -> None:
        with log.path(name) as rec:
            results[name] = rec["seconds_per_fwd_bwd"] = time_fwd_bwd(fn, inputs, repeats)

    timed("vectorised", selective_scan_vectorised, args.repeats)
    if not args.device.startswith("cuda"):
        log.skip("cuda_kernel", "mamba-ssm's kernel runs on CUDA only")
    elif cuda_kernel() is None:
        log.skip("cuda_kernel", "mamba-ssm's compiled kernel is not installed")
    else:
        timed("cuda_kernel", lambda *a, **k: selective_scan(*a, impl="cuda", **k), args.repeats)
    if not args.skip_sequential:
        timed("sequential", selective_scan_sequential, max(1, args.repeats // 2))
    for name, seconds in results.items():
        line = f"  {name:24s} {seconds * 1e3:10.2f} ms"
        if "sequential" in results and name != "sequential":
            line += f"   speed-up vs sequential {results['sequential'] / seconds:6.1f}x"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"shape": shape, "device": args.device, "torch": torch.__version__,
                                         "seconds": results}, indent=2))
    return log.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
