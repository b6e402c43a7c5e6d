"""Teachers whose outputs become data must infer deterministically, whatever the batch size."""

import torch

from idc.archs import build_model, deterministic_inference


def _tiny_mambairv2():
    torch.manual_seed(0)
    return build_model(
        "mambairv2_light", upscale=4, img_size=16, embed_dim=12, d_state=4, depths=[1], num_heads=[2],
        window_size=4, inner_rank=8, num_tokens=8, mlp_ratio=1.0, upsampler="pixelshuffledirect",
    )


def test_official_mambairv2_inference_is_random_but_deterministic_mode_is_not():
    model = _tiny_mambairv2().eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # Gumbel routing in eval mode, as official
        model = deterministic_inference(model)
        whole = model(x)
        assert torch.equal(whole, model(x))
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(one_by_one, whole, rtol=0, atol=1e-6)


def test_other_networks_are_only_put_in_eval_mode():
    model = build_model("edsr", num_feat=8, num_block=1, upscale=4).train()
    assert deterministic_inference(model) is model and not model.training
