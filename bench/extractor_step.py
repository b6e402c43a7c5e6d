"""The condensation extractor's forward + backward (to its input) per patch, along each execution
path, at several batch sizes: time, memory kept for the backward pass, and features and input
gradients against the float32 path.

This is the extractor's share of a condensation step (the synthetic side, n = 16 patches at paper
scale) and of the real side's batched features. Every path is a set of the product's own
`CondenseConfig` switches, applied by the product's own code (`frozen_extractor`, `FeatureCall`):

    float32            the official arithmetic (reference)
    tf32               allow_tf32 (CUDA)
    fused              fused_attention: SDPA with the bias + shift mask broadcast over the images
    fused_pad8         + attention_head_dim_multiple 8 (head dimension 10 -> 16)
    bf16, bf16_fused, bf16_fused_pad8    autocast_bf16 with those attention paths
    compiled           --compile: torch.compile (mode default) of the fastest eager switch set,
                       in a child process killed at --compile-seconds

Per path and batch size one JSON line (bench/partlog.py): `ms_per_pass`, `ms_per_patch`,
`speedup` (float32's ms at the same size over this path's, measured in the same run),
`saved_mib_per_patch` (what autograd keeps for the backward pass, counted by
`torch.autograd.graph.saved_tensors_hooks`, so the same figure on any device), `peak_gib` (CUDA
peak allocation), and `feature_rel_diff` / `grad_rel_diff` (max |a - b| / max |b| over the first
patches, against float32). A batch that does not fit is a line with status out_of_memory.

    python bench/extractor_step.py --scale cpu --json
    python bench/extractor_step.py --scale paper --device cuda --jsonl extractor.jsonl
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

from bench.condense_step import build_extractor  # noqa: E402
from bench.partlog import PartLog, run_in_child  # noqa: E402
from idc.condense.config import CondenseConfig  # noqa: E402
from idc.condense.extractor import FeatureCall, frozen_extractor  # noqa: E402
from idc.device import resolve_device  # noqa: E402

# Patch size, batch sizes (most telling first: the real side's batch, the step's 16, the largest),
# timed passes per size, extractor. 512 is the size the issue of memory is about (explicit
# attention keeps every window's score maps: ~310 MiB per 64x64 patch).
SCALES = {
    "paper": dict(size=64, counts=(256, 16, 512), reps={16: 10, 256: 3, 512: 2}, extractor="swinir_light"),
    "cpu": dict(size=16, counts=(16, 4), reps={4: 2, 16: 1}, extractor="swinir_toy"),
}
COMPARED = 8  # patches whose features and input gradients are compared with float32

PATHS: list[tuple[str, dict[str, Any]]] = [
    ("float32", {}),
    ("tf32", {"allow_tf32": True}),
    ("fused", {"fused_attention": True}),
    ("fused_tf32", {"fused_attention": True, "allow_tf32": True}),
    ("fused_pad8", {"fused_attention": True, "attention_head_dim_multiple": 8}),
    ("fused_pad8_tf32", {"fused_attention": True, "attention_head_dim_multiple": 8, "allow_tf32": True}),
    ("bf16", {"autocast_bf16": True}),
    ("bf16_fused", {"autocast_bf16": True, "fused_attention": True}),
    ("bf16_fused_pad8", {"autocast_bf16": True, "fused_attention": True, "attention_head_dim_multiple": 8}),
]


def patches(n: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(device)


def _loss(features: torch.Tensor) -> torch.Tensor:
    # A per-patch sum, so that a patch's input gradient does not depend on the batch size.
    return features.square().flatten(1).mean(1).sum()


def features_and_grad(call: FeatureCall, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward + backward of the product's feature call: (features, gradient to the input)."""
    x = x.detach().clone().requires_grad_(True)
    f, _ = call(x)
    _loss(f).backward()
    return f.detach(), x.grad


def saved_bytes(call: FeatureCall, x: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass of one forward (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = x.detach().clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        f, _ = call(x)
    del f
    return sum(storages.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


def measure(extractor: str, size: int, counts: list[int], reps: dict[int, int], switches: dict[str, Any],
            device: str, reference: dict[str, Any] | None = None, with_saved: bool = True,
            on_count=None) -> dict[int, dict[str, Any]]:
    """Figures of one switch set at each batch size (`on_count(n, record)` as each ends). With
    `reference` ({"features", "grad"} of the first COMPARED patches): the relative differences."""
    dev = torch.device(device)
    cfg = CondenseConfig.from_dict(switches)
    ext = build_extractor(extractor, size)
    out: dict[int, dict[str, Any]] = {}
    with frozen_extractor(ext, cfg, dev) as frozen:
        call = FeatureCall(frozen, cfg, dev, tap=None)
        for n in counts:
            x = patches(n, size, dev)
            rec: dict[str, Any] = {"patches": n}
            try:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                f, g = features_and_grad(call, x)  # warm-up (and compilation)
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(reps[n]):
                    features_and_grad(call, x)
                _sync(dev)
                ms = (time.perf_counter() - t0) * 1000 / reps[n]
                rec.update(ms_per_pass=round(ms, 3), ms_per_patch=round(ms / n, 4))
                if dev.type == "cuda":
                    rec["peak_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
                if reference is not None:
                    k = min(COMPARED, n)
                    rec["feature_rel_diff"] = _rel(f[:k].cpu(), reference["features"][:k])
                    rec["grad_rel_diff"] = _rel(g[:k].cpu(), reference["grad"][:k])
                if with_saved and not cfg.compile_extractor:
                    rec["saved_mib_per_patch"] = round(saved_bytes(call, x[:min(n, 4)]) / 2**20 / min(n, 4), 2)
                del f, g
            except torch.OutOfMemoryError as err:
                rec.update(status="out_of_memory", reason=str(err).splitlines()[0][:200])
            out[n] = rec
            if on_count is not None:
                on_count(n, rec)
    return out


def reference_figures(extractor: str, size: int, device: str) -> dict[str, Any]:
    """Features and input gradients of the first COMPARED patches on the float32 path (CPU tensors)."""
    dev = torch.device(device)
    cfg = CondenseConfig.from_dict({})
    with frozen_extractor(build_extractor(extractor, size), cfg, dev) as frozen:
        f, g = features_and_grad(FeatureCall(frozen, cfg, dev, tap=None), patches(COMPARED, size, dev))
    return {"features": f.cpu(), "grad": g.cpu()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--counts", type=int, nargs="+", help="batch sizes (default: the scale's)")
    ap.add_argument("--paths", nargs="+", choices=[name for name, _ in PATHS], help="only these paths")
    ap.add_argument("--compile", action="store_true", help="also time the fastest eager path compiled")
    ap.add_argument("--compile-seconds", type=float, default=120, help="deadline of the compiled path's child")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--jsonl", type=Path, help="one JSON line per path and batch size, written as measured")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    scale = SCALES[args.scale]
    counts = list(args.counts or scale["counts"])
    reps = {n: scale["reps"].get(n, 1) for n in counts}
    paths = [(name, sw) for name, sw in PATHS if args.paths is None or name in args.paths]
    names = [f"{name}@{n}" for n in counts for name, _ in paths] + ([f"compiled@{n}" for n in counts]
                                                                    if args.compile else [])
    head = {"scale": args.scale, "torch": torch.__version__, "extractor": scale["extractor"],
            "size": scale["size"],
            "device": torch.cuda.get_device_name(device) if gpu else
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"}
    log = PartLog(args.jsonl, plan=names, **head)
    reference = reference_figures(scale["extractor"], scale["size"], str(device))
    results: dict[str, dict] = {}
    baseline: dict[int, float] = {}

    def record(name: str, n: int, rec: dict[str, Any]) -> None:
        rec.setdefault("status", "ok")
        if name == "float32" and "ms_per_pass" in rec:
            baseline[n] = rec["ms_per_pass"]
        if n in baseline and "ms_per_pass" in rec:
            rec["speedup"] = round(baseline[n] / rec["ms_per_pass"], 3)
        results[f"{name}@{n}"] = log.end(f"{name}@{n}", rec)

    for name, switches in paths:
        if switches.get("allow_tf32") and not gpu:
            for n in counts:
                log.skip(f"{name}@{n}", "TF32 is a CUDA feature: nothing to time on this device")
            continue
        if switches.get("autocast_bf16") and not gpu and not torch.backends.mkldnn.is_available():
            for n in counts:
                log.skip(f"{name}@{n}", "bf16 autocast needs oneDNN on the CPU")
            continue
        try:
            measure(scale["extractor"], scale["size"], counts, reps, switches, str(device), reference,
                    on_count=lambda n, rec, name=name: record(name, n, rec))
        except Exception as err:  # noqa: BLE001 - one path failing must not lose the others
            for n in counts:
                if f"{name}@{n}" not in results:
                    record(name, n, {"status": "failed", "error": f"{type(err).__name__}: {err}"})
    if args.compile:
        # The eager switch set that was fastest at the first batch size, compiled.
        timed = [(rec["ms_per_pass"], name) for key, rec in results.items()
                 for name, _ in paths if key == f"{name}@{counts[0]}" and "ms_per_pass" in rec]
        best = min(timed)[1] if timed else "float32"
        switches = dict(dict(paths).get(best, {}), compile_extractor=True, compile_mode="default")
        status, value = run_in_child(measure, dict(extractor=scale["extractor"], size=scale["size"],
                                                             counts=counts, reps=reps, switches=switches,
                                                             device=str(device), reference=reference),
                                     args.compile_seconds)
        for n in counts:
            rec = value[n] if status == "ok" else {"status": status, "reason": str(value)}
            record("compiled", n, {"compiled_from": best, **rec})
    if args.json:
        print(json.dumps({**head, "paths": results}, indent=1))
    return log.exit_code()


if __name__ == "__main__":
    sys.exit(main())
