"""The GPU execution switches of condensation (channels-last, bf16 autocast of the extractor,
deterministic algorithms) and the extractor's freezing and restoring: on the CPU for what the CPU
can show, on CUDA (marked gpu) for determinism of a rerun and of a resumed run."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from idc.condense.condenser import CondensationInterrupted, condense_instance
from idc.condense.config import CondenseConfig, split_execution_settings
from idc.condense.extractor import FeatureCall, LayerTap, frozen_extractor
from tests.doubles import TinyExtractor
from tests.test_condense_condenser import TINY, real_patches


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return real_patches()


TINY_LR = CondenseConfig().lr


def _cfg(**kw) -> CondenseConfig:
    return CondenseConfig.from_dict({**TINY, **kw})


def _run(real_lr, cfg, **kw):
    return condense_instance(real_lr, TinyExtractor(channels=4), cfg, seed=3, progress=False, **kw)


def test_channels_last_gives_the_contiguous_result(real) -> None:
    """The same features up to float rounding; over a run Adam's normalised steps can turn a
    rounding-level gradient difference into up to one lr-sized step, so the run is compared at
    that scale."""
    cpu = torch.device("cpu")
    extractor = TinyExtractor(channels=4)
    with frozen_extractor(extractor, _cfg(), cpu) as frozen:
        plain_f, _ = FeatureCall(frozen, _cfg(), cpu, None)(real)
    with frozen_extractor(extractor, _cfg(channels_last=True), cpu) as frozen:
        last_f, _ = FeatureCall(frozen, _cfg(channels_last=True), cpu, None)(real)
    torch.testing.assert_close(last_f, plain_f, rtol=1e-5, atol=1e-6)
    plain, _ = _run(real, _cfg())
    channels_last, _ = _run(real, _cfg(channels_last=True))
    assert (channels_last - plain).abs().max() < 3 * TINY_LR


def test_bf16_autocast_runs_the_extractor_in_bf16_and_the_losses_in_float32(real) -> None:
    extractor = TinyExtractor(channels=4)
    seen: list[torch.dtype] = []
    hook = extractor.conv_after_body.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    cfg = _cfg(autocast_bf16=True)
    with frozen_extractor(extractor, cfg, torch.device("cpu")) as frozen:
        f, _ = FeatureCall(frozen, cfg, torch.device("cpu"), None)(real)
    hook.remove()
    assert seen == [torch.bfloat16] and f.dtype == torch.float32
    # the whole run: float32 patches, close to the float32 run, but not equal (the switch acts)
    full, _ = _run(real, _cfg())
    half, log = _run(real, cfg)
    assert half.dtype == torch.float32 and torch.isfinite(torch.tensor(log["steps"][-1]["loss"]))
    assert 0 < (half - full).abs().max() < 0.1


def test_autocast_is_part_of_the_result_and_layout_switches_are_not() -> None:
    result, execution = split_execution_settings(_cfg(autocast_bf16=True, channels_last=True,
                                                      deterministic=True).to_dict())
    assert result["autocast_bf16"] is True
    assert {"channels_last", "deterministic"} <= set(execution) and "channels_last" not in result


def test_deterministic_algorithms_hold_during_the_run_and_are_restored(real) -> None:
    before = torch.are_deterministic_algorithms_enabled()
    during: list[bool] = []
    a, _ = _run(real, _cfg(deterministic=True), on_log=lambda r: during.append(torch.are_deterministic_algorithms_enabled()))
    b, _ = _run(real, _cfg(deterministic=True))
    assert during and all(during)
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.equal(a, b)


def test_frozen_extractor_restores_everything_after_a_failure() -> None:
    extractor = TinyExtractor(channels=4)
    cfg = _cfg(channels_last=True, deterministic=True)
    weights = {k: v.clone() for k, v in extractor.state_dict().items()}
    with pytest.raises(RuntimeError, match="inside"):
        with frozen_extractor(extractor, cfg, torch.device("cpu")) as frozen:
            assert not any(p.requires_grad for p in frozen.parameters())
            assert frozen.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
            raise RuntimeError("inside the run")
    assert all(p.requires_grad for p in extractor.parameters())
    assert extractor.conv_first.weight.is_contiguous()
    assert not torch.are_deterministic_algorithms_enabled()
    for k, v in extractor.state_dict().items():
        assert torch.equal(v, weights[k])


def test_the_first_layer_tap_goes_through_the_same_call(real) -> None:
    extractor = TinyExtractor(channels=4)
    cfg = _cfg(feature_layer="first", channels_last=True)
    tap = LayerTap(extractor)
    try:
        with frozen_extractor(extractor, cfg, torch.device("cpu")) as frozen:
            call = FeatureCall(frozen, cfg, torch.device("cpu"), tap)
            f, g = call.batched(real, batch=5)
            f1, g1 = call(real)
    finally:
        tap.close()
    assert g is not None and g.shape[0] == real.shape[0] == f.shape[0]
    torch.testing.assert_close(f, f1)
    torch.testing.assert_close(g, g1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_condensation_is_deterministic_on_rerun_and_resume(real, tmp_path) -> None:
    """With `deterministic`, two CUDA runs and a run resumed from a mid-run checkpoint give the
    same patches bit for bit (fused attention and channels-last on, as on a GPU cluster)."""
    cfg = _cfg(deterministic=True, fused_attention=True, channels_last=True, checkpoint_every=8)
    a, _ = _run(real, cfg, device="cuda")
    b, _ = _run(real, cfg, device="cuda")
    assert torch.equal(a, b)
    # interrupted by SIGUSR1 after step 12 (checkpoint written at the next step boundary), resumed
    ckpt = tmp_path / "run.ckpt"

    def interrupt(record):
        if record["step"] == 12:
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(CondensationInterrupted):
        _run(real, cfg, device="cuda", resume_path=ckpt, on_log=interrupt)
    resumed, log = _run(real, cfg, device="cuda", resume_path=ckpt)
    assert log["resumed_from_step"] == 13 and torch.equal(resumed, a)


def test_the_attention_switches_hold_during_the_run_and_are_restored() -> None:
    from idc.archs import build_model

    extractor = build_model("swinir", img_size=16, upscale=4, depths=[2], embed_dim=16, num_heads=[2],
                            window_size=8, mlp_ratio=2.0, upsampler="pixelshuffledirect")
    modules = [m for m in extractor.modules() if hasattr(m, "head_dim_multiple")]
    cfg = _cfg(fused_attention=True, attention_head_dim_multiple=8)
    with frozen_extractor(extractor, cfg, torch.device("cpu")):
        assert modules and all(m.fused_attention and m.head_dim_multiple == 8 for m in modules)
    assert all(not m.fused_attention and m.head_dim_multiple == 1 for m in modules)
    # execution only: the same result up to float rounding, so it reruns nothing
    result, execution = split_execution_settings(cfg.to_dict())
    assert "attention_head_dim_multiple" in execution and "attention_head_dim_multiple" not in result
    with pytest.raises(ValueError, match="attention_head_dim_multiple"):
        _cfg(attention_head_dim_multiple=3)
