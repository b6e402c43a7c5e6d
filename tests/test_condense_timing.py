"""Timing hooks of the condensation loop (idc.condense.timing): they time the loop the workflow
runs, step by step and part by part, and change nothing it computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idc.condense.condenser import condense_instance
from idc.condense.config import CondenseConfig
from idc.condense.timing import NO_TIMER, PARTS, StepTimer
from tests.doubles import TinyExtractor

# warm-up 1, events at steps 1 and 2 (group, then pair), so steps 3.. carry every loss
CFG = dict(steps=8, warmup=1, assign_interval=1, assign_times=1, channels=8, kernel=3, num_freqs=16, groups=2,
           log_every=4, checkpoint_every=0, milestones=[6], ratio=0.2)


@pytest.fixture
def real():
    return torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _run(real, timer=NO_TIMER, **changes):
    cfg = CondenseConfig.from_dict({**CFG, **changes})
    syn, log = condense_instance(real, TinyExtractor(channels=4), cfg, seed=5, progress=False, timer=timer)
    return syn, log


def test_a_timed_run_computes_exactly_what_an_untimed_one_does(real):
    plain, log = _run(real)
    timed, timed_log = _run(real, StepTimer("cpu"))
    assert torch.equal(plain, timed)
    assert [r["loss"] for r in log["steps"]] == [r["loss"] for r in timed_log["steps"]]


def test_every_step_is_timed_and_its_parts_from_parts_from_on(real):
    timer = StepTimer("cpu", parts_from=3)
    _run(real, timer)
    assert len(timer.records) == CFG["steps"]
    assert all(set(r) == {"step"} for r in timer.records[:3])  # whole steps only before parts_from
    for i, r in enumerate(timer.records[3:], start=3):
        assert {"view", "extractor_forward", "samples", "loss_ins_group", "loss_pair", "backward", "optimizer"} <= set(r)
        assert set(r) - {"step"} <= set(PARTS)
        # the parts lie inside their step
        assert sum(v for k, v in r.items() if k != "step") <= r["step"] * 1.01 + 0.05
        assert ("log" in r) == (i % CFG["log_every"] == 0 or i == CFG["steps"] - 1)
    # an assignment event is timed only at its step
    events = StepTimer("cpu")
    _run(real, events)
    assert [i for i, r in enumerate(events.records) if "assignment" in r] == [1, 2]


def test_the_summary_gives_the_step_time_and_the_mean_of_each_part(real):
    timer = StepTimer("cpu", parts_from=4)
    _run(real, timer)
    whole = timer.summary(0, 4, how="min")
    assert whole["steps"] == 4 and "parts_ms" not in whole
    assert whole["ms_per_step"] == pytest.approx(min(r["step"] for r in timer.records[:4]), abs=1e-3)
    detail = timer.summary(4, 7)
    steps = timer.records[4:7]
    assert detail["ms_per_step"] == pytest.approx(np.mean([r["step"] for r in steps]), abs=1e-3)
    parts = detail["parts_ms"]
    assert parts["backward"] == pytest.approx(np.mean([r["backward"] for r in steps]), abs=1e-3)
    assert sum(parts.values()) == pytest.approx(detail["ms_per_step"], abs=0.05)  # `other` closes the sum
    with pytest.raises(ValueError, match="no timed steps"):
        timer.summary(20, 30)


def test_an_unknown_part_is_refused(real):
    timer = StepTimer("cpu")
    with timer.step(), pytest.raises(ValueError, match="unknown part 'extractor'"):
        with timer.part("extractor"):
            pass


def test_after_step_runs_once_per_step(real):
    calls = []
    _run(real, StepTimer("cpu", after_step=lambda: calls.append(1)))
    assert len(calls) == CFG["steps"]
