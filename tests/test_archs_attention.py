"""The fused window attention (scaled_dot_product_attention) equals the explicit official arithmetic."""

from __future__ import annotations

import pytest
import torch

from idc.archs import build_model, load_official_weights, set_fused_attention
from idc.archs.attention import relative_bias, window_attention
from idc.archs.swinir import relative_position_index, shifted_window_mask


def _inputs(dtype: torch.dtype, images: int = 2, windows: int = 4, heads: int = 3, n: int = 16, d: int = 8):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(images * windows, heads, n, d, generator=g, dtype=dtype).requires_grad_()
               for _ in range(3))
    table = (0.5 * torch.randn(49, heads, generator=g, dtype=dtype)).requires_grad_()
    return q, k, v, table


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shifted", [False, True])
def test_fused_equals_explicit_values_and_gradients(dtype, tol, shifted) -> None:
    q, k, v, table = _inputs(dtype)
    index = relative_position_index(4, 4)
    # 8x8 image in 4x4 windows (4 windows), shifted by 2: the official -100 mask between regions.
    mask = shifted_window_mask(8, 8, 4, 2).to(dtype) if shifted else None
    if shifted:
        assert (mask == -100).any()
    outs, grads = [], []
    for fused in (False, True):
        bias = relative_bias(table, index, 16)
        out = window_attention(q, k, v, bias, mask, 8 ** -0.5, fused=fused)
        weight = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        grads.append(torch.autograd.grad((out * weight).sum(), (q, k, v, table)))
        outs.append(out.detach())
    assert (outs[0] - outs[1]).abs().max().item() < tol
    for name, a, b in zip("qkv", grads[0][:3], grads[1][:3]):
        assert (a - b).abs().max().item() < tol, name
    # The bias table's gradient too: SwinIR training learns it through the fused path.
    assert (grads[0][3] - grads[1][3]).abs().max().item() < 10 * tol


def test_set_fused_attention_switches_every_block() -> None:
    model = build_model("swinir_light_x4")
    assert set_fused_attention(model) == 4 * 6  # four RSTBs of six blocks
    assert all(m.fused_attention for m in model.modules() if hasattr(m, "fused_attention"))
    assert set_fused_attention(model, False) == 24
    mamba = build_model("mambairv2_light_x4")
    assert set_fused_attention(mamba) > 0


def test_swinir_fused_matches_the_official_fixture() -> None:
    from safetensors.torch import load_file

    from tests.conftest import shared_path

    tensors = load_file(str(shared_path("fixtures", "swinir_light_x4.safetensors")))
    model = build_model("swinir_light_x4").eval()
    load_official_weights(model, {k: v for k, v in tensors.items() if not k.startswith("__")})
    set_fused_attention(model)
    with torch.no_grad():
        out = model(tensors["__input__"])
        feats = model.features(tensors["__input__"])
    assert (out - tensors["__output__"]).abs().max().item() < 1e-5
    assert (feats - tensors["__features__"]).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["swinir_light_x4", "mambairv2_light_x4"])
def test_models_fused_equal_explicit_with_input_gradients(name) -> None:
    """What condensation differentiates: features of the synthetic patch w.r.t. its pixels."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    if hasattr(model, "set_routing"):
        model.set_routing("argmax")
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 3, 24, 24)
    results = []
    for fused in (False, True):
        set_fused_attention(model, fused)
        xi = x.clone().requires_grad_()
        feats = model.features(xi)
        (grad,) = torch.autograd.grad(feats.square().mean(), xi)
        results.append((feats.detach(), grad))
    (f0, g0), (f1, g1) = results
    assert (f0 - f1).abs().max().item() < 1e-4 * max(1.0, f0.abs().max().item())
    assert (g0 - g1).abs().max().item() < 1e-4 * g0.abs().max().item()


@pytest.mark.gpu
@pytest.mark.parametrize("shifted", [False, True])
def test_cuda_fused_kernel_equals_explicit_with_bias_gradient(shifted) -> None:
    """On CUDA the fused path is the memory-efficient SDPA kernel with an additive bias."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    q, k, v, table = (t.detach().cuda().requires_grad_() for t in _inputs(torch.float32, images=8, windows=4))
    index = relative_position_index(4, 4).cuda()
    mask = shifted_window_mask(8, 8, 4, 2).cuda() if shifted else None
    results = []
    for fused in (False, True):
        out = window_attention(q, k, v, relative_bias(table, index, 16), mask, 8 ** -0.5, fused=fused)
        results.append((out.detach(), torch.autograd.grad(out.square().sum(), (q, k, v, table))))
    (o0, g0), (o1, g1) = results
    assert (o0 - o1).abs().max().item() < 1e-4
    for a, b in zip(g0, g1):
        assert (a - b).abs().max().item() < 1e-3 * max(1.0, a.abs().max().item())


@pytest.mark.parametrize("fused", [False, True])
def test_attention_dropout_only_in_training(fused) -> None:
    q, k, v, table = (t.detach() for t in _inputs(torch.float32))
    bias = relative_bias(table, relative_position_index(4, 4), 16)
    drop = torch.nn.Dropout(0.5)
    plain = window_attention(q, k, v, bias, None, 8 ** -0.5, fused=fused)
    drop.eval()
    assert torch.equal(window_attention(q, k, v, bias, None, 8 ** -0.5, fused=fused, dropout=drop), plain)
    drop.train()
    torch.manual_seed(0)
    dropped = window_attention(q, k, v, bias, None, 8 ** -0.5, fused=fused, dropout=drop)
    assert (dropped - plain).abs().max().item() > 1e-2
