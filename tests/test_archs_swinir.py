"""SwinIR against the official fixture (bit-level agreement expected, tolerance 1e-5)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from idc.archs import build_model, load_official_weights
from idc.archs.common import pad_to_multiple
from idc.archs.swinir import relative_position_index, shifted_window_mask


@pytest.fixture(scope="module")
def swinir_fixture():
    from tests.conftest import shared_path

    tensors = load_file(str(shared_path("fixtures", "swinir_light_x4.safetensors")))
    state = {k: v for k, v in tensors.items() if not k.startswith("__")}
    extra = {k: v for k, v in tensors.items() if k.startswith("__")}
    return state, extra


def _params(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = build_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts() -> None:
    assert _params("swinir_light_x4") == 929_628
    with torch.device("meta"):
        model = build_model("swinir_light_x4")
    tables = sum(p.numel() for n, p in model.named_parameters() if n.endswith("relative_position_bias_table"))
    assert tables == 32_400  # the usual "897K" leaves these out
    assert round(_params("swinir_classic_x4") / 1e6, 1) == 11.9  # SwinIR paper, Table 2


def test_fixture_state_dict_loads_strictly(swinir_fixture) -> None:
    state, _ = swinir_fixture
    model = build_model("swinir_light_x4")
    model.load_state_dict(state, strict=True)  # attn_mask is derived, not stored


def test_output_features_and_layers_match(swinir_fixture) -> None:
    state, extra = swinir_fixture
    model = build_model("swinir_light_x4").eval()
    model.load_state_dict(state, strict=True)
    x = extra["__input__"]  # 20 x 28: padded to 24 x 32 inside
    with torch.no_grad():
        out = model(x)
        feats = model.features(x)
        first = model.conv_first(model._prepare(x))
        tokens = model.patch_embed(first)
        layers = []
        for layer in model.layers:
            tokens = layer(tokens, (24, 32))
            layers.append(tokens)
    assert out.shape == (1, 3, 80, 112)
    assert (out - extra["__output__"]).abs().max().item() < 1e-5
    assert feats.shape == (1, 60, 24, 32)
    assert (feats - extra["__features__"]).abs().max().item() < 1e-5
    assert (first - extra["__conv_first__"]).abs().max().item() < 1e-5
    for i, got in enumerate(layers):
        assert (got - extra[f"__layer{i}_out__"]).abs().max().item() < 1e-5, f"layer {i}"


def test_derived_buffers_equal_official(swinir_fixture) -> None:
    state, extra = swinir_fixture
    assert torch.equal(shifted_window_mask(24, 32, 8, 4), extra["__attn_mask_24x32__"])
    assert torch.equal(shifted_window_mask(64, 64, 8, 4), extra["__attn_mask_img64__"])
    index = state["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    assert index.dtype == torch.int64 and torch.equal(relative_position_index(8, 8), index)


def test_official_checkpoint_with_attn_mask_buffers_loads(swinir_fixture) -> None:
    """Released checkpoints hold the 12 `attn_mask` buffers under `params`; they are ignored."""
    state, extra = swinir_fixture
    released = dict(state)
    for i in range(4):
        for j in (1, 3, 5):
            released[f"layers.{i}.residual_group.blocks.{j}.attn_mask"] = extra["__attn_mask_img64__"]
    model = load_official_weights(build_model("swinir_light_x4").eval(), {"params": released})
    with torch.no_grad():
        assert (model(extra["__input__"]) - extra["__output__"]).abs().max().item() < 1e-5


def test_reflect_padding_matches_torch_and_small_inputs_work() -> None:
    x = torch.rand(1, 3, 5, 6)
    assert torch.equal(pad_to_multiple(x, 8, "reflect"), torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect"))
    torch.manual_seed(0)
    model = build_model("swinir", upscale=2, img_size=16, window_size=4, depths=[2], num_heads=[2],
                        embed_dim=8, mlp_ratio=2, upsampler="pixelshuffle").eval()
    y = model(torch.rand(2, 3, 7, 9))
    assert y.shape == (2, 3, 14, 18) and torch.isfinite(y).all()
    assert model.features(torch.rand(1, 3, 7, 9)).shape == (1, 8, 8, 12)
