"""condense_instance end to end on tiny inputs: determinism, resume, guards, switches, schedule."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from idc.condense.condenser import CondensationInterrupted, NonFiniteLossError, condense_instance, condense_instances
from idc.condense.config import CondenseConfig
from tests.doubles import TinyExtractor

# ratio 0.2: the 12 real patches below give floor(2.4) = 2 synthetic ones
TINY = dict(steps=24, warmup=8, assign_interval=3, assign_times=3, channels=16, kernel=3, num_freqs=32,
            groups=3, patch=4, log_every=4, checkpoint_every=0, milestones=[16, 20], ratio=0.2)


def tiny_cfg(variant: str | None = None, **kw) -> CondenseConfig:
    return CondenseConfig.from_dict({**TINY, **kw}, variant=variant)


def real_patches() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 16, 16, generator=g)
    # 12 overlapping 8x8 crops of one smooth random "image" (an instance)
    crops = [base[0, :, i:i + 8, j:j + 8] for i in range(0, 9, 4) for j in range(0, 9, 2)][:12]
    return torch.stack(crops)


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return real_patches()


def run(real, cfg, seed=0, **kw):
    return condense_instance(real, TinyExtractor(channels=4), cfg, seed=seed, progress=False, **kw)


def test_shape_range_determinism(real) -> None:
    syn, log = run(real, tiny_cfg())
    assert syn.shape == (2, 3, 8, 8) and syn.dtype == torch.float32
    assert 0 <= float(syn.min()) and float(syn.max()) <= 1
    assert log["n_real"] == 12 and log["n_synthetic"] == 2 and log["seed"] == 0
    assert {"step", "loss", "loss_ins", "loss_group", "loss_pair", "lr", "seconds"} <= set(log["steps"][0])
    syn2, _ = run(real, tiny_cfg())
    assert torch.equal(syn, syn2)
    syn3, _ = run(real, tiny_cfg(), seed=1)
    assert not torch.equal(syn, syn3)


def test_schedule_in_log_follows_config(real) -> None:
    cfg = tiny_cfg()
    _, log = run(real, cfg)
    assert [e["step"] for e in log["assignment_events"]] == cfg.assignment_steps() == [8, 11, 14, 17]
    assert [e["grouped"] for e in log["assignment_events"]] == [2, 3, 3, 0]  # floor((j+1) 8 / 3) cumulative
    assert [e["paired"] for e in log["assignment_events"]] == [0, 2, 3, 3]
    assert log["groups"]["paired"] == 8 and sum(log["groups"]["quotas"]) == 8
    for r in log["steps"]:
        assert r["lr"] == pytest.approx(cfg.lr_at(r["step"]))
        if r["step"] < cfg.warmup:  # warm-up: instance loss only
            assert r["loss_group"] == 0 and r["loss_pair"] == 0
            assert r["loss"] == pytest.approx(cfg.w_ins * r["loss_ins"], rel=1e-5)
        if r["step"] >= 12:
            assert r["loss_pair"] > 0 and r["loss_group"] > 0
    assert [r["step"] for r in log["steps"]] == [0, 4, 8, 12, 16, 20, 23]


def test_ablation_switches(real) -> None:
    _, no_pair = run(real, tiny_cfg("v4"))
    assert all(r["loss_pair"] == 0 for r in no_pair["steps"]) and no_pair["groups"]["paired"] == 0
    assert any(r["loss_group"] > 0 for r in no_pair["steps"])
    _, no_group = run(real, tiny_cfg("v3"))
    assert all(r["loss_group"] == 0 and r["loss_pair"] == 0 for r in no_group["steps"])
    assert no_group["assignment_events"] == []
    syn_no_ins, no_ins = run(real, tiny_cfg("v7"))
    first = no_ins["steps"][0]
    assert first["loss_ins"] > 0 and first["loss"] == 0  # measured but not optimised
    init, _ = run(real, tiny_cfg("v7", steps=8))  # warm-up only: nothing to optimise, x stays put
    init0, _ = run(real, tiny_cfg("v7", steps=1))
    assert torch.equal(init, init0)
    _, v1 = run(real, tiny_cfg("v1"))
    assert v1["samples"]["per_patch"] == 1 and v1["samples"]["dim"] == 4 * 8 * 8
    _, v2 = run(real, tiny_cfg("v2"))
    assert v2["samples"]["per_patch"] == 1 and v2["samples"]["dim"] == 16 * 16
    _, v6 = run(real, tiny_cfg("v6"))  # no unfolding, with groups and pairs of whole patches
    assert v6["samples"]["per_patch"] == 1 and v6["groups"]["paired"] == 8
    _, v5 = run(real, tiny_cfg("v5"))
    assert v5["samples"]["per_patch"] == 16 and v5["samples"]["dim"] == 4  # raw channels, unfolded
    results = {v: run(real, tiny_cfg(v, steps=6, kernel=5))[0] for v in ("idc", "x1", "x2", "x3")}
    for v in ("x1", "x2", "x3"):
        assert not torch.equal(results[v], results["idc"]), v
    _, a11 = run(real, tiny_cfg("a11"))
    assert a11["groups"]["paired"] == 8


def test_fast_path_equals_plain_path(real) -> None:
    syn_f, log_f = run(real, tiny_cfg(fast_path=True))
    syn_p, log_p = run(real, tiny_cfg(fast_path=False))
    for a, b in zip(log_f["steps"], log_p["steps"]):
        for k in ("loss", "loss_ins", "loss_group", "loss_pair"):
            assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-6), (a["step"], k)
    assert float((syn_f - syn_p).abs().max()) < 1e-2


def test_assignment_alternatives_run_and_keep_quotas(real) -> None:
    for kw in (dict(assign_order="random"), dict(pairing="greedy"), dict(deformation="none"), dict(bn_mode="real")):
        _, log = run(real, tiny_cfg(**kw))
        assert log["groups"]["paired"] == 8 and sum(log["groups"]["quotas"]) == 8, kw
        if kw.get("deformation") == "none":
            assert all(r["deform_reg"] == 0 for r in log["steps"])


def test_frequency_reuse_is_equal_on_both_paths(real) -> None:
    syn_f, log_f = run(real, tiny_cfg(freq_resample_every=5))
    syn_p, log_p = run(real, tiny_cfg(freq_resample_every=5, fast_path=False))
    assert log_f["steps"][-1]["loss"] == pytest.approx(log_p["steps"][-1]["loss"], rel=1e-3)
    assert not torch.equal(syn_f, run(real, tiny_cfg())[0])


class _Stop(Exception):
    pass


def test_resume_after_signal_and_after_kill_equals_uninterrupted(real, tmp_path) -> None:
    cfg = tiny_cfg(checkpoint_every=5)
    ref, ref_log = run(real, cfg)
    ckpt = tmp_path / "resume" / "x.ckpt"

    def send_signal(record):
        if record["step"] == 12:
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(CondensationInterrupted, match="SIGUSR1 at step 13"):
        run(real, cfg, resume_path=ckpt, on_log=send_signal)
    assert ckpt.exists()
    out, log = run(real, cfg, resume_path=ckpt)
    assert torch.equal(out, ref) and log["resumed_from_step"] == 13
    strip = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]  # noqa: E731
    assert strip(log["steps"]) == strip(ref_log["steps"])

    # a crash (no signal) after the periodic checkpoint at step 15 loses only steps 15..16
    ckpt.unlink()

    def crash(record):
        if record["step"] == 16:
            raise _Stop

    with pytest.raises(_Stop):
        run(real, cfg, resume_path=ckpt, on_log=crash)
    out2, log2 = run(real, cfg, resume_path=ckpt)
    assert log2["resumed_from_step"] == 15 and torch.equal(out2, ref)


def test_checkpoint_from_other_settings_is_discarded_and_corrupt_is_refused(real, tmp_path, caplog) -> None:
    ckpt = tmp_path / "c.ckpt"

    def stop(record):
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(CondensationInterrupted):
        run(real, tiny_cfg(), resume_path=ckpt, on_log=stop)
    saved = ckpt.read_bytes()
    # other settings: that state is of no use, the run starts afresh and equals a fresh run
    fresh, _ = run(real, tiny_cfg(alpha=0.5))
    with caplog.at_level("WARNING"):
        out, log = run(real, tiny_cfg(alpha=0.5), resume_path=ckpt)
    assert "other settings (alpha)" in caplog.text
    assert log["resumed_from_step"] is None and torch.equal(out, fresh)
    ckpt.write_bytes(saved[:100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        run(real, tiny_cfg(), resume_path=ckpt)


class _NaNAfter(TinyExtractor):
    """Returns NaN features from the `after`-th call of features() on."""

    def __init__(self, after: int) -> None:
        super().__init__(channels=4)
        self.calls, self.after = 0, after

    def features(self, x):
        self.calls += 1
        f = super().features(x)
        return f * float("nan") if self.calls > self.after else f


def test_non_finite_loss_stops_with_step(real) -> None:
    # one call extracts the real features, then one call per step: call 7 is step 5
    with pytest.raises(NonFiniteLossError, match="step 5"):
        condense_instance(real, _NaNAfter(6), tiny_cfg(), seed=0, progress=False)


def test_deferred_non_finite_check_still_names_the_first_bad_step(real, monkeypatch) -> None:
    """The accelerator code path (checks only at log steps) on the CPU: step 5 is found at step 8."""
    import idc.condense.condenser as condenser

    monkeypatch.setattr(condenser, "defer_host_checks", lambda device: True)
    with pytest.raises(NonFiniteLossError, match="step 5"):
        condense_instance(real, _NaNAfter(6), tiny_cfg(), seed=0, progress=False)
    syn, _ = run(real, tiny_cfg())
    monkeypatch.undo()
    assert torch.equal(syn, run(real, tiny_cfg())[0])


def test_bad_input_is_rejected_before_work(real) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, h, w\)"):
        run(real[:, :1], tiny_cfg())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run(real * 2, tiny_cfg())
    with pytest.raises(ValueError, match="features"):
        condense_instance(real, nn.Conv2d(3, 3, 1), tiny_cfg(), seed=0, progress=False)
    with pytest.raises(ValueError, match="patch=3"):
        run(real, tiny_cfg(patch=3))


def test_sigmoid_parametrisation_and_real_init_stay_in_range(real) -> None:
    syn, _ = run(real, tiny_cfg(parametrisation="sigmoid", init="real_noise"))
    assert 0 < float(syn.min()) and float(syn.max()) < 1


def test_extractor_is_frozen_and_untouched(real) -> None:
    ext = TinyExtractor(channels=4)
    before = {k: v.clone() for k, v in ext.state_dict().items()}
    condense_instance(real, ext, tiny_cfg(steps=4), seed=0, progress=False)
    assert all(torch.equal(before[k], v) for k, v in ext.state_dict().items())
    assert all(p.grad is None for p in ext.parameters())


@pytest.mark.slow
def test_loss_falls_on_a_real_bsd100_image() -> None:
    from PIL import Image

    from tests.conftest import shared_path

    img = np.asarray(Image.open(shared_path("data", "BSD100", "HR", "img_001.png")).convert("RGB"))
    patches = [img[i:i + 24, j:j + 24] for i in range(0, 24 * 6, 24) for j in range(0, 24 * 6, 24)]
    real = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 255.0  # 36 LR-sized patches
    cfg = CondenseConfig.from_dict(dict(steps=300, warmup=60, assign_interval=20, assign_times=5, channels=64,
                                        kernel=3, num_freqs=256, groups=4, log_every=10, checkpoint_every=0,
                                        milestones=[250], init="random"))  # from noise: the most to do
    # 4 synthetic patches as a share of a larger set would give (alone: floor(0.1 x 36) = 3)
    syn, log = condense_instance(real, TinyExtractor(channels=8, seed=1), cfg, seed=0, progress=False, n_synthetic=4)
    steps = {r["step"]: r for r in log["steps"]}
    # instance loss over the run, and the full loss once every patch is grouped and paired
    assert steps[299]["loss_ins"] < 0.7 * steps[0]["loss_ins"]
    settled = cfg.assignment_steps()[-1] + 10
    assert steps[299]["loss"] < 0.9 * steps[settled]["loss"]
    assert syn.shape == (4, 3, 24, 24)


def test_packed_instances_equal_separate_runs(real, tmp_path) -> None:
    other = real.flip(-1)[:10]  # another instance with another N (n = 2 of 0.2 x 10)
    cfg = tiny_cfg(checkpoint_every=5)
    packed = condense_instances([real, other], TinyExtractor(channels=4), cfg, seeds=[0, 3], progress=False)
    for (syn, log), (r, s) in zip(packed, [(real, 0), (other, 3)]):
        ref, ref_log = run(r, cfg, seed=s)
        assert syn.shape == ref.shape and log["n_real"] == len(r) and log["seed"] == s
        # batched convolutions round differently; Adam's normalised steps carry that forward
        assert float((syn - ref).abs().max()) < 1e-2
        assert log["steps"][-1]["loss"] == pytest.approx(ref_log["steps"][-1]["loss"], rel=1e-3)
    # a packed run resumes like a single one
    ckpt = tmp_path / "pack.ckpt"

    def crash(index, record):
        if record["step"] == 16:
            raise _Stop

    with pytest.raises(_Stop):
        condense_instances([real, other], TinyExtractor(channels=4), cfg, seeds=[0, 3], progress=False,
                           resume_path=ckpt, on_log=crash)
    resumed = condense_instances([real, other], TinyExtractor(channels=4), cfg, seeds=[0, 3], progress=False,
                                 resume_path=ckpt)
    for (a, _), (b, log) in zip(packed, resumed):
        assert torch.equal(a, b) and log["resumed_from_step"] == 15
    with pytest.raises(ValueError, match="equal patch sizes"):
        condense_instances([real, real[:, :, :4, :4]], TinyExtractor(channels=4), cfg, seeds=[0, 1], progress=False)


def test_fused_attention_equals_explicit_and_leaves_the_extractor_as_it_was(real) -> None:
    """The extractor's window attention through SDPA: same condensation up to float rounding."""
    from idc.archs import build_model

    torch.manual_seed(0)
    swinir = build_model("swinir_light_x4", img_size=8)
    runs = {}
    for fused in (False, True):
        runs[fused] = condense_instance(real, swinir, tiny_cfg(fused_attention=fused, steps=12, milestones=[10]),
                                        seed=0, progress=False)
        assert not any(m.fused_attention for m in swinir.modules() if hasattr(m, "fused_attention"))
    (syn_e, log_e), (syn_f, log_f) = runs[False], runs[True]
    for a, b in zip(log_e["steps"], log_f["steps"]):
        for k in ("loss", "loss_ins", "loss_group", "loss_pair"):
            assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-6), (a["step"], k)
    assert float((syn_e - syn_f).abs().max()) < 1e-2
    assert log_f["config"]["fused_attention"] is True
