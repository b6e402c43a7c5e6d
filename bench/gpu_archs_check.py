"""CUDA checks of the SR networks and the selective scan (run on a GPU machine).

1. Fixture equivalence on CUDA (TF32 off): EDSR, SwinIR-light, MambaIRv2-light run B.
2. Vectorised selective scan on CUDA vs the sequential loop on CUDA (outputs and gradients),
   and vs mamba_ssm's kernel where it is installed.
3. Seeded routing gives the same output on CPU and CUDA (noise is drawn on the CPU).

    python bench/gpu_archs_check.py --fixtures ../shared/fixtures
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc.archs import MODEL_PRESETS, build_model  # noqa: E402
from idc.archs.selective_scan import cuda_kernel, selective_scan  # noqa: E402


def split(path: Path) -> tuple[dict, dict]:
    tensors = load_file(str(path))
    return ({k: v for k, v in tensors.items() if not k.startswith("__")},
            {k: v for k, v in tensors.items() if k.startswith("__")})


def check_fixtures(fixtures: Path, device: str) -> bool:
    ok = True
    for preset, stem in (("edsr_baseline_x4", "edsr_baseline_x4"), ("swinir_light_x4", "swinir_light_x4")):
        path = fixtures / f"{stem}.safetensors"
        if not path.exists():
            print(f"  {stem}: fixture missing, skipped")
            continue
        state, extra = split(path)
        model = build_model(preset).eval()
        model.load_state_dict(state, strict=True)
        model.to(device)
        with torch.no_grad():
            x = extra["__input__"].to(device)
            out, feats = model(x).cpu(), model.features(x).cpu()
        d_out = (out - extra["__output__"]).abs().max().item()
        d_feat = (feats - extra["__features__"]).abs().max().item()
        good = d_out < 1e-5 and d_feat < (1e-3 if "edsr" in stem else 1e-5)
        ok &= good
        print(f"  {stem}: output {d_out:.2e}, features {d_feat:.2e} {'OK' if good else 'FAIL'}")
    path = fixtures / "mambairv2_light_x4.safetensors"
    if path.exists():
        state, extra = split(path)
        extra.update(load_file(str(fixtures / "mambairv2_light_x4_aux.safetensors")))
        model = build_model("mambairv2_light_x4").eval()
        model.load_state_dict(state, strict=True)
        model.to(device)
        x = extra["__input__"].to(device)
        with torch.no_grad(), model.injected_routing(extra["__gumbel_noise__"]), model.recording_routing() as rec:
            out = model(x).cpu()
        routes = torch.stack([r["route_index"].cpu() for r in rec])
        order = torch.stack([r["sort_indices"].cpu() for r in rec])
        same_routes = torch.equal(routes, extra["__route_index_B__"])
        same_order = torch.equal(order, extra["__sort_indices_B__"])
        d_out = (out - extra["__output_B__"]).abs().max().item()
        good = same_routes and same_order and d_out < 1e-5
        ok &= good
        print(f"  mambairv2_light_x4 run B: routes equal {same_routes}, sort equal {same_order}, "
              f"output {d_out:.2e} {'OK' if good else 'FAIL'} (scan: {'cuda kernel' if cuda_kernel() else 'vectorised'})")
    return ok


def check_scan(device: str) -> bool:
    ok = True
    gen = torch.Generator().manual_seed(0)
    for b, d, n, length in ((2, 48, 8, 1024), (1, 16, 16, 333)):
        tensors = [torch.randn(b, d, length, generator=gen), torch.randn(b, d, length, generator=gen) * 0.5,
                   -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
                   torch.randn(b, 1, n, length, generator=gen), torch.randn(b, 1, n, length, generator=gen),
                   torch.randn(d, generator=gen), torch.randn(d, generator=gen) * 0.5]
        weight = torch.randn(b, d, length, generator=gen).to(device)
        results = {}
        impls = ["sequential", "vectorised"] + (["cuda"] if cuda_kernel() is not None else [])
        for impl in impls:
            ins = [t.to(device).requires_grad_(True) for t in tensors]
            out = selective_scan(*ins[:6], delta_bias=ins[6], delta_softplus=True, impl=impl)
            grads = torch.autograd.grad((out * weight).sum(), ins)
            results[impl] = (out, grads)
        ref_out, ref_grads = results["sequential"]
        for impl in impls[1:]:
            out, grads = results[impl]
            d_out = (out - ref_out).abs().max().item() / max(1.0, ref_out.abs().max().item())
            d_grad = max((g - r).abs().max().item() / max(1.0, r.abs().max().item()) for g, r in zip(grads, ref_grads))
            tol = 1e-5 if impl == "vectorised" else 1e-3
            good = d_out < tol and d_grad < tol
            ok &= good
            print(f"  scan {impl} vs sequential B={b} D={d} N={n} L={length}: rel output {d_out:.2e}, "
                  f"rel grads {d_grad:.2e} {'OK' if good else 'FAIL'}")
    return ok


def check_seeded_routing(device: str) -> bool:
    kwargs = dict(MODEL_PRESETS["mambairv2_light_x4"]["kwargs"], depths=[2], num_heads=[4])
    torch.manual_seed(0)
    model = build_model("mambairv2_light", **kwargs).eval()
    x = torch.rand(2, 3, 20, 24)
    outs = []
    for dev in ("cpu", device):
        model.to(dev).set_routing("gumbel_seeded", seed=11)
        with torch.no_grad():
            outs.append(model(x.to(dev)).cpu())
    diff = (outs[0] - outs[1]).abs().max().item()
    good = diff < 1e-4
    print(f"  seeded routing CPU vs {device}: max diff {diff:.2e} {'OK' if good else 'FAIL'}")
    return good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "fixtures")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    # Full float32 so the comparison with the CPU fixtures is meaningful.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, mamba_ssm kernel: {cuda_kernel() is not None}")
    ok = check_fixtures(args.fixtures, device)
    ok &= check_scan(device)
    ok &= check_seeded_routing(device)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
