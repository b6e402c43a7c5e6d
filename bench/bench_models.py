"""Training steps per second of the lightweight SR networks (forward + L1 backward + Adam step).

Default: batch 4 of 64 x 64 LR patches (x4: 256 x 256 HR), float32, on the CPU. Random tensors
stand in for data (the cost does not depend on the values). MambaIRv2-light uses deterministic
routing so runs are comparable; on CUDA it uses mamba_ssm's kernel where installed.

    python bench/bench_models.py
    python bench/bench_models.py --models mambairv2_light_x4 --steps 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc.archs import MODEL_PRESETS, build_model  # noqa: E402

LIGHT_MODELS = ("edsr_baseline_x4", "swinir_light_x4", "mambairv2_light_x4")


def steps_per_second(preset: str, batch: int, lr_size: int, steps: int, device: str, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(preset).to(device).train()
    if hasattr(model, "set_routing"):
        model.set_routing("argmax")
    scale = MODEL_PRESETS[preset]["kwargs"]["upscale"]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    lr = torch.rand(batch, 3, lr_size, lr_size, generator=gen).to(device)
    hr = torch.rand(batch, 3, lr_size * scale, lr_size * scale, generator=gen).to(device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = F.l1_loss(model(lr), hr)
        loss.backward()
        optimizer.step()
        return loss.item()  # also synchronises CUDA

    step()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    return {"model": preset, "params": sum(p.numel() for p in model.parameters()),
            "seconds_per_step": median, "steps_per_second": 1.0 / median}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(LIGHT_MODELS), choices=sorted(MODEL_PRESETS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"training step (fwd + L1 bwd + Adam), batch {args.batch}, LR {args.lr_size}x{args.lr_size}, "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    rows = []
    for preset in args.models:
        row = steps_per_second(preset, args.batch, args.lr_size, args.steps, args.device)
        rows.append(row)
        print(f"  {preset:22s} {row['params']:>11,d} params  {row['seconds_per_step']:8.2f} s/step  "
              f"{row['steps_per_second']:8.3f} steps/s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
