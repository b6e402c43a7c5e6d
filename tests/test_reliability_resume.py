"""Every resume checks identity (issue 23, classes 3 and 5): a condensation checkpoint made with
other extractor weights or another implementation version, and an SR training checkpoint of
another implementation version, are discarded with a log line saying why, never resumed."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from idc.condense.condenser import CondensationInterrupted, condense_instance
from idc.sr.train import TrainingInterrupted
from idc.versions import IMPL_VERSIONS
from tests.doubles import TinyExtractor
from tests.test_condense_condenser import real_patches, tiny_cfg
from tests.test_sr_train import _settings, _signal_at, _train, data  # noqa: F401 - `data` is a fixture


def _interrupted_condensation(ckpt, extractor) -> None:
    def stop(record):
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(CondensationInterrupted):
        condense_instance(real_patches(), extractor, tiny_cfg(), seed=0, resume_path=ckpt, on_log=stop)


def test_condensation_checkpoint_of_other_extractor_weights_starts_over(tmp_path, caplog):
    """Once an interrupted condensation resumed against a retrained extractor without a word."""
    ckpt = tmp_path / "c.ckpt"
    _interrupted_condensation(ckpt, TinyExtractor(channels=4, seed=0))
    other = TinyExtractor(channels=4, seed=1)
    fresh, _ = condense_instance(real_patches(), other, tiny_cfg(), seed=0)
    with caplog.at_level("WARNING"):
        out, log = condense_instance(real_patches(), other, tiny_cfg(), seed=0, resume_path=ckpt)
    assert "other extractor weights" in caplog.text and "starting afresh" in caplog.text
    assert log["resumed_from_step"] is None and torch.equal(out, fresh)


def test_condensation_checkpoint_of_same_extractor_is_resumed(tmp_path):
    """A new module with the same weights is the same extractor: the checkpoint is resumed."""
    ckpt = tmp_path / "c.ckpt"
    _interrupted_condensation(ckpt, TinyExtractor(channels=4, seed=0))
    _, log = condense_instance(real_patches(), TinyExtractor(channels=4, seed=0), tiny_cfg(), seed=0,
                               resume_path=ckpt)
    assert log["resumed_from_step"] is not None


def test_condensation_checkpoint_of_other_implementation_version_starts_over(tmp_path, caplog, monkeypatch):
    ckpt = tmp_path / "c.ckpt"
    _interrupted_condensation(ckpt, TinyExtractor(channels=4))
    monkeypatch.setitem(IMPL_VERSIONS, "condense", IMPL_VERSIONS["condense"] + 1)
    with caplog.at_level("WARNING"):
        _, log = condense_instance(real_patches(), TinyExtractor(channels=4), tiny_cfg(), seed=0, resume_path=ckpt)
    assert "implementation version condense" in caplog.text
    assert log["resumed_from_step"] is None


def test_training_checkpoint_of_other_implementation_version_starts_over(data, tmp_path, caplog, monkeypatch):  # noqa: F811
    """Once a teacher resumed its old checkpoint after IMPL_VERSIONS["train"] changed."""
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, out, step_callback=_signal_at(2)))
    monkeypatch.setitem(IMPL_VERSIONS, "train", IMPL_VERSIONS["train"] + 1)
    with caplog.at_level("WARNING"):
        _train(_settings(data, out))
    assert "implementation version train" in caplog.text and "starting afresh" in caplog.text
    assert json.loads((out / "train_log.json").read_text())["resumed_from_step"] is None


def test_training_checkpoint_discard_names_the_changed_setting(data, tmp_path, caplog):  # noqa: F811
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, out, step_callback=_signal_at(2)))
    with caplog.at_level("WARNING"):
        _train(_settings(data, out, lr=5e-4))
    assert "other settings (lr)" in caplog.text
