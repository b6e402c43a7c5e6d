"""The fused window attention (scaled_dot_product_attention) equals the explicit official arithmetic."""

from __future__ import annotations

import pytest
import torch

from idc.archs import build_model, load_official_weights, set_fused_attention, set_window_attention
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


# ------------------------------------------------------------------------------------------------
# Head-dimension padding, the mask broadcast of the fused path, bf16 scores, one compilation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("fused", [False, True])
def test_padding_the_head_dimension_leaves_values_and_gradients_unchanged(dtype, tol, fused) -> None:
    """Zero columns add nothing to q.k and give zero output columns, which are cut off; the scale
    stays the unpadded one. d = 10 (SwinIR-light's) padded to 16."""
    q, k, v, table = _inputs(dtype, d=10)
    index = relative_position_index(4, 4)
    mask = shifted_window_mask(8, 8, 4, 2).to(dtype)
    outs, grads = [], []
    for multiple in (1, 8):
        out = window_attention(q, k, v, relative_bias(table, index, 16), mask, 10 ** -0.5, fused=fused,
                               head_dim_multiple=multiple)
        assert out.shape == q.shape
        weight = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        grads.append(torch.autograd.grad((out * weight).sum(), (q, k, v, table)))
        outs.append(out.detach())
    assert (outs[0] - outs[1]).abs().max().item() < tol
    for name, a, b in zip(["q", "k", "v", "table"], *grads):
        assert (a - b).abs().max().item() < 10 * tol, name


def _saved_tensors(fn) -> list[torch.Tensor]:
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn()
    return saved


def test_the_fused_path_keeps_no_per_image_copy_of_bias_and_mask() -> None:
    """The shifted blocks' bias + mask is (windows, heads, n, n); copied once per image it was the
    largest tensor the fused kernel kept for the backward pass (1.6 GB per block at 256 patches of
    64x64). Folding the windows into the heads lets it broadcast over the images instead."""
    images, windows, heads, n = 6, 4, 3, 16
    q, k, v, table = _inputs(torch.float32, images=images, windows=windows, heads=heads, n=n)
    mask = shifted_window_mask(8, 8, 4, 2)
    bias = relative_bias(table, relative_position_index(4, 4), n)
    masks: list[torch.Tensor] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        window_attention(q, k, v, bias, mask, 8 ** -0.5, fused=True)
    (attn_mask,) = masks
    # One image's windows x heads, broadcast over the images by the kernel: no copy per image.
    assert attn_mask.shape == (1, windows * heads, n, n)
    assert attn_mask.untyped_storage().nbytes() == windows * heads * n * n * attn_mask.element_size()


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 autocast on the CPU needs oneDNN")
def test_under_bf16_autocast_the_scores_and_their_softmax_stay_bf16() -> None:
    """Adding the float32 bias used to promote the bf16 scores to float32, and autocast ran the
    softmax in float32 and cast it back for the product with v: every saved (windows, heads, n, n)
    tensor is bf16 now."""
    q, k, v, table = _inputs(torch.float32)
    bias = relative_bias(table.detach(), relative_position_index(4, 4), 16)
    mask = shifted_window_mask(8, 8, 4, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved = _saved_tensors(lambda: window_attention(q, k, v, bias, mask, 8 ** -0.5))
    scores = [t for t in saved if t.shape[-2:] == (16, 16)]
    assert scores and all(t.dtype == torch.bfloat16 for t in scores)


# bf16 SwinIR-light features against float32, max |a - b| / max |b|: measured 7.9e-3 to 9.7e-3 over
# three seeds of weights and inputs (32x32, explicit and fused, padded to 8), torch 2.13 CPU.
BF16_FEATURE_RTOL = 2e-2


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 autocast on the CPU needs oneDNN")
@pytest.mark.parametrize("fused", [False, True])
def test_swinir_light_bf16_features_are_within_the_measured_tolerance(fused) -> None:
    torch.manual_seed(0)
    model = build_model("swinir_light_x4", img_size=32).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model.features(x)
        set_window_attention(model, fused=fused, head_dim_multiple=8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model.features(x).float()
    relative = ((half - reference).abs().max() / reference.abs().max()).item()
    assert 1e-4 < relative < BF16_FEATURE_RTOL  # bf16 acts, and stays within the tolerance


def test_set_window_attention_sets_both_switches_and_refuses_a_bad_multiple() -> None:
    model = build_model("mambairv2_light_x4")
    count = set_window_attention(model, fused=True, head_dim_multiple=8)
    modules = [m for m in model.modules() if hasattr(m, "head_dim_multiple")]
    assert count == len(modules) > 0
    assert all(m.fused_attention and m.head_dim_multiple == 8 for m in modules)
    with pytest.raises(ValueError, match="head_dim_multiple"):
        set_window_attention(model, head_dim_multiple=0)


def test_a_compiled_swinir_traces_once() -> None:
    """The shift mask's cache lookup used to become a guard that the first call's own insertion
    broke, so a compiled extractor compiled twice (minutes on a GPU). Traced with the eager
    backend: the guards are the same, without code generation."""
    import torch._dynamo

    torch._dynamo.reset()
    model = build_model("swinir", img_size=16, upscale=4, depths=[2], embed_dim=16, num_heads=[2],
                        window_size=8, mlp_ratio=2.0, upsampler="pixelshuffledirect").eval()
    compiled = torch.compile(model.features, backend="eager")
    x = torch.rand(2, 3, 16, 16)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):
            compiled(x)
    torch._dynamo.reset()
