"""Converged-instance cost: the real side from a frequency pool computed once, and stopping on a
plateau of the held-out diagnostic with the learning-rate decays moved to the plateau."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from idc.condense.condenser import condense_instance, plateau_step
from idc.condense.config import CondenseConfig
from idc.condense.losses import real_cf_stats, sample_frequencies, select_cf_stats
from tests.doubles import TinyExtractor
from tests.test_condense_diagnostics import _real_patches


def test_pool_statistics_equal_a_direct_computation() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(300, 12, generator=gen), dim=1)
    seg = torch.randint(0, 4, (300,), generator=gen)
    pool = sample_frequencies(64, 12, std=1.0, generator=gen, device=torch.device("cpu"))
    index = torch.randperm(64, generator=gen)[:16]
    picked = select_cf_stats(real_cf_stats(x, seg, 4, pool, chunk=37), index)
    direct = real_cf_stats(x, seg, 4, pool[index], chunk=1000)
    for key in ("re", "im", "group_re", "group_im", "counts"):
        torch.testing.assert_close(picked[key], direct[key], rtol=1e-5, atol=1e-6)


def _cfg(**kw) -> CondenseConfig:
    base = dict(steps=60, warmup=6, assign_interval=3, assign_times=4, milestones=[40, 50, 55], num_freqs=32,
                channels=8, kernel=3, patch=4, groups=2, log_every=3, checkpoint_every=0, snapshot_patches=0)
    base.update(kw)
    return CondenseConfig.from_dict(base)


def test_pooled_frequencies_give_the_loss_of_those_frequencies() -> None:
    """Fast path with pooled real statistics == the plain path recomputing the real side at the
    same frequencies (same draws: the pool only changes where the real side comes from)."""
    real = _real_patches(n=20)
    extractor = TinyExtractor(channels=8, seed=0)
    fast, log_fast = condense_instance(real, extractor, _cfg(freq_pool=8, steps=15), seed=0, progress=False)
    plain, log_plain = condense_instance(real, extractor, _cfg(freq_pool=8, steps=15, fast_path=False), seed=0,
                                         progress=False)
    for a, b in zip(log_fast["steps"], log_plain["steps"]):
        assert a["loss_ins"] == pytest.approx(b["loss_ins"], rel=1e-3)
    assert (fast - plain).abs().max() < 1e-2
    fresh, _ = condense_instance(real, extractor, _cfg(steps=15), seed=0, progress=False)
    assert not torch.equal(fresh, fast)  # the pool is a different (finite) set of frequencies


def test_plateau_rule_stops_on_a_plateau_and_not_before() -> None:
    falling = [{"step": s, "diag_mmd": 1.0 / (1 + s)} for s in range(0, 100, 10)]
    assert plateau_step(falling, after=0, patience=3, tolerance=0.02) is None  # still improving > 2%
    flat = falling[:5] + [{"step": s, "diag_mmd": 1.0 / 41 * (1 - 1e-4 * s)} for s in range(50, 100, 10)]
    assert plateau_step(flat, after=0, patience=3, tolerance=0.02) == 71  # 3 logged steps without 2%
    assert plateau_step(flat, after=75, patience=3, tolerance=0.02) is None  # too few after `after`
    noisy = [{"step": s, "diag_mmd": v} for s, v in enumerate([5, 4, 4.5, 3, 3.5, 3.2, 2, 2.1, 2.05, 2.02])]
    assert plateau_step(noisy, after=0, patience=3, tolerance=0.02) == 10


def test_schedule_after_a_plateau_keeps_every_event_and_milestone_in_order() -> None:
    cfg = CondenseConfig()  # the paper: events 4000..14000, milestones 15k/17k/19k, 20k steps
    assert cfg.schedule(None) == ([15000, 17000, 19000], 20000)
    milestones, end = cfg.schedule(14400)  # a plateau after the last assignment event (14,000)
    assert milestones == [14400, 16320, 18240] and end == 19200
    assert all(e < milestones[0] for e in cfg.assignment_steps())
    assert cfg.schedule(16000) == ([15000, 17000, 19000], 20000)  # already decaying: unchanged
    assert cfg.lr_at(14399, 14400) == cfg.lr and cfg.lr_at(14400, 14400) == pytest.approx(cfg.lr * 0.1)
    no_decay = CondenseConfig(milestones=[])
    assert no_decay.schedule(15000) == ([], 15000)


def test_a_run_that_plateaus_stops_early_logs_why_and_resumes_exactly(tmp_path: Path) -> None:
    real = _real_patches(n=20)
    extractor = TinyExtractor(channels=8, seed=0)
    cfg = _cfg(steps=400, milestones=[300, 340, 380], stop_on_plateau=True, plateau_patience=3,
               plateau_tolerance=0.05, checkpoint_every=20)
    syn, log = condense_instance(real, extractor, cfg, seed=0, progress=False)
    stop = log["stopping"]
    assert stop["rule"] == "plateau" and stop["plateau_step"] is not None
    assert cfg.last_assignment_step() < stop["plateau_step"] < 300
    assert stop["end_step"] < 400 and log["steps"][-1]["step"] == stop["end_step"] - 1
    lrs = {r["step"]: r["lr"] for r in log["steps"]}
    assert lrs[stop["plateau_step"] - 1] == cfg.lr and min(lrs.values()) == pytest.approx(cfg.lr * 1e-3)
    # a run resumed from its last checkpoint finds the same plateau and the same patches
    ckpt = tmp_path / "c.ckpt"
    condense_instance(real, extractor, cfg, seed=0, progress=False, resume_path=ckpt)
    again, log_again = condense_instance(real, extractor, cfg, seed=0, progress=False, resume_path=ckpt)
    assert log_again["resumed_from_step"] is not None and log_again["stopping"] == stop
    assert torch.equal(again, syn)


def test_stopping_needs_the_diagnostics_and_booleans_must_be_booleans() -> None:
    with pytest.raises(ValueError, match="stop_on_plateau"):
        CondenseConfig(stop_on_plateau=True, diagnostics=False)
    with pytest.raises(ValueError, match="use_pair='false' must be true or false"):
        CondenseConfig.from_dict({"use_pair": "false"})


def test_logged_steps_show_rate_and_eta(caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="idc.condense.condenser"):
        condense_instance(_real_patches(n=20), TinyExtractor(channels=8, seed=0), _cfg(steps=7, log_every=3),
                          seed=0, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert len(lines) == 3 and all("steps/s, eta " in line for line in lines)
    assert lines[-1].startswith("step 6/7") and lines[-1].endswith("eta 0s")
