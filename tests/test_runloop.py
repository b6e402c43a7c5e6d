"""The pieces both long loops share: stop signals, run fingerprints and the reasons a checkpoint
is refused, checkpoint files (atomic writes, verification on reading), seed derivation."""

from __future__ import annotations

import os
import signal
import threading
import zlib

import numpy as np
import pytest

from idc.runloop import (
    CorruptCheckpointError,
    NonFiniteLossError,
    StopFlag,
    changed_settings,
    derive_seed,
    file_identity,
    file_sha256,
    fingerprint_digest,
    identity_change,
    implementation_change,
    read_checkpoint,
    state_digest,
    stop_signals,
    verify_checksum,
    write_checkpoint,
)
from idc.versions import IMPL_VERSIONS


def test_stop_signal_becomes_a_flag_and_the_previous_handler_returns() -> None:
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        with stop_signals() as flag:
            assert isinstance(flag, StopFlag) and flag.signum is None
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)
            assert flag.signum == signal.SIGUSR1 and flag.name == "SIGUSR1"  # the first one counts
            assert seen == []
        os.kill(os.getpid(), signal.SIGUSR1)
        assert seen == [signal.SIGUSR1]  # the handler from before the block is back
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_first_stop_signal_is_logged_once(caplog) -> None:
    import logging

    log = logging.getLogger("test.runloop")
    with caplog.at_level(logging.WARNING, logger="test.runloop"), stop_signals(log=log):
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
    assert [r.getMessage() for r in caplog.records] == [
        "SIGUSR1 received: will checkpoint and stop after the current step"]


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    result = {}

    def body() -> None:
        with stop_signals() as flag:
            result["flag"] = flag.signum
            result["handler"] = signal.getsignal(signal.SIGUSR1)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert result == {"flag": None, "handler": before}


def test_fingerprints_are_equal_for_equal_runs_and_differ_otherwise(tmp_path) -> None:
    run = {"config": {"lr": 0.01, "steps": 10}, "seed": 3}
    assert fingerprint_digest(run) == fingerprint_digest({"seed": 3, "config": {"steps": 10, "lr": 0.01}})
    assert fingerprint_digest(run) != fingerprint_digest({**run, "seed": 4})
    assert fingerprint_digest(run) != fingerprint_digest({**run, "config": {"lr": 0.02, "steps": 10}})
    assert changed_settings({"lr": 0.01, "steps": 10}, {"lr": 0.02, "steps": 10, "alpha": 1}) == ["lr", "alpha"]
    assert changed_settings(run["config"], dict(run["config"])) == []

    data = tmp_path / "store.h5"
    data.write_bytes(b"abc")
    first = file_identity(data)
    assert file_identity(data) == first
    data.write_bytes(b"abcd")
    assert file_identity(data) != first


def test_a_refused_checkpoint_is_said_in_one_line() -> None:
    assert implementation_change("train", IMPL_VERSIONS["train"]) is None
    assert implementation_change("condense", "unrecorded") == \
        f"implementation version condense unrecorded -> {IMPL_VERSIONS['condense']}"
    old = {"config": {"lr": 0.01, "steps": 10}, "store": {"size": 1}, "weights": "a" * 64, "sizes": (1, 2)}
    assert identity_change(old, {**old, "config": {"lr": 0.02, "steps": 10}, "store": {"size": 2}}) == \
        "other settings (lr, store)"
    assert identity_change(old, {**old, "weights": "b" * 64}, digests={"weights": "extractor weights"}) == \
        "other extractor weights (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)"
    # named inputs are said once, under their name; a tuple equals the list it reads back as
    assert identity_change(old, {**old, "x": 1, "y": 2}, names={"x": "real patches", "y": "real patches"}) == \
        "other settings (real patches)"
    assert identity_change(old, {**old, "sizes": [1, 2], "z": 0}) == "other settings (z)"
    assert identity_change(None, old) == "other settings"  # an identity that was never recorded


def test_checkpoint_write_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch) -> None:
    import torch

    path = tmp_path / "run.ckpt"
    write_checkpoint(path, {"format": 1, "x": torch.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]
    before = path.read_bytes()

    def disk_full(obj, target, *args, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_checkpoint(path, {"format": 1, "x": torch.arange(4)})
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"] and path.read_bytes() == before
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(path, what="checkpoint", file_format=1, hint="h")["x"], torch.arange(3))


def test_checkpoint_reading_refuses_damage_and_other_formats(tmp_path) -> None:
    import torch

    path = write_checkpoint(tmp_path / "c.pt", {"format": 1, "x": torch.zeros(2)})
    digest = file_sha256(path)
    verify_checksum(path, digest, file_sha256(path), what="checkpoint", hint="delete it")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CorruptCheckpointError, match=rf"^checkpoint {path} does not match the checksum written at "
                                                     r"save \(truncated or corrupt\); delete it$"):
        verify_checksum(path, digest, file_sha256(path), what="checkpoint", hint="delete it")
    with pytest.raises(CorruptCheckpointError, match=r"is corrupt or truncated .*; delete it$"):
        read_checkpoint(path, what="checkpoint", file_format=1, hint="delete it")
    write_checkpoint(path, {"format": "other/1"})
    with pytest.raises(CorruptCheckpointError, match=r"has format 'other/1', expected 1; delete it$"):
        read_checkpoint(path, what="checkpoint", file_format=1, hint="delete it")
    assert issubclass(CorruptCheckpointError, ValueError)


def test_state_digest_keeps_its_values() -> None:
    """Condensation checkpoints carry this checksum: a changed value would refuse every one written before."""
    import torch

    state = {"step": 3, "x": torch.arange(4, dtype=torch.float32), "nested": [{"a": None}, (1, "b")]}
    assert state_digest(state) == "9ce441c3e4381a923c712d3c4bb769a6998b63cdd952e547c7311cebf7853cfe"
    assert state_digest({**state, "x": torch.arange(4, dtype=torch.float64)}) != state_digest(state)


def test_each_loop_refuses_the_other_loops_checkpoint(tmp_path) -> None:
    """The two formats share the plumbing, not the files: neither resumes the other's."""
    import torch

    from idc.condense import checkpoint as condense_ckpt
    from idc.sr import checkpoint as sr_ckpt

    condense_file = tmp_path / "img.ckpt"
    condense_ckpt.save_checkpoint(condense_file, {"format": condense_ckpt.CHECKPOINT_FORMAT, "step": 1})
    assert condense_ckpt.load_checkpoint(condense_file)["step"] == 1
    resume = tmp_path / "resume"
    sr_file = sr_ckpt.save_checkpoint(resume, {"x": torch.zeros(1)}, step=1, fingerprint="f")
    with pytest.raises(CorruptCheckpointError, match=f"condensation checkpoint {sr_file} has format 1"):
        condense_ckpt.load_checkpoint(sr_file)
    # a condensation checkpoint put where training keeps its own, hash and all, is still not one
    condense_file.replace(sr_file)
    manifest = {**sr_ckpt.read_manifest(resume), "sha256": file_sha256(sr_file)}
    with pytest.raises(CorruptCheckpointError, match=r"has format 'idc-condense-checkpoint/2', expected 1"):
        sr_ckpt.load_checkpoint(resume, manifest)


def test_a_checkpoint_of_other_settings_is_refused_by_both_loops() -> None:
    from idc.condense import checkpoint as condense_ckpt
    from idc.sr import checkpoint as sr_ckpt

    identity = {"config": {"lr": 0.01}, "store": {"size": 1}}
    manifest = {"fingerprint": fingerprint_digest(identity), "impl_version": IMPL_VERSIONS["train"],
                "identity": identity}
    assert sr_ckpt.stale_reason(manifest, fingerprint_digest(identity), identity) is None
    other = {**identity, "config": {"lr": 0.02}}
    assert sr_ckpt.stale_reason(manifest, fingerprint_digest(other), other) == "other settings (lr)"
    old_manifest = {k: v for k, v in manifest.items() if k != "identity"}
    assert sr_ckpt.stale_reason(old_manifest, fingerprint_digest(other), other) == "other settings"

    prints = [{"impl_version": IMPL_VERSIONS["condense"], "extractor_sha256": "e", "config": {"alpha": 1.0},
               "seed": 0, "real_shape": [12, 3, 8, 8], "real_sum": 1.5, "n_synthetic": 2}]
    checkpoint = {"fingerprints": prints}
    assert condense_ckpt.stale_reason(checkpoint, prints) is None
    assert condense_ckpt.stale_reason(checkpoint, [{**prints[0], "config": {"alpha": 0.5}}]) == \
        "other settings (alpha)"
    assert condense_ckpt.stale_reason(checkpoint, [{**prints[0], "real_sum": 2.5}]) == "other settings (real patches)"
    assert condense_ckpt.stale_reason(checkpoint, prints * 2) == "another number of packed instances (1 -> 2)"
    assert condense_ckpt.stale_reason({"fingerprints": None}, prints) == "its fingerprints are missing or malformed"


def test_derived_seeds_keep_their_values() -> None:
    # The values the condenser's per-component seeds and the workflow's job seeds always had.
    for seed, name in [(0, "init"), (123, "kmeans"), (7, "image-42")]:
        old = int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])
        assert derive_seed(seed, name) == old
    assert derive_seed(5, 2, 0, "edsr") == int(
        np.random.SeedSequence([5, 2, 0, zlib.crc32(b"edsr")]).generate_state(1)[0])
    assert derive_seed(0, "init") != derive_seed(1, "init") != derive_seed(0, "freqs")


def test_non_finite_loss_error_is_a_floating_point_error() -> None:
    with pytest.raises(FloatingPointError, match="at step 3") as info:
        raise NonFiniteLossError("loss nan at step 3", step=3)
    assert info.value.step == 3


def test_both_loops_raise_the_shared_classes() -> None:
    from idc import runloop
    from idc.condense import condenser
    from idc.sr import train

    assert issubclass(condenser.NonFiniteLossError, runloop.NonFiniteLossError)
    assert train.NonFiniteLossError is runloop.NonFiniteLossError
    assert issubclass(condenser.CondensationInterrupted, runloop.RunInterrupted)
    assert issubclass(train.TrainingInterrupted, runloop.RunInterrupted)
    err = condenser.NonFiniteLossError(7, "loss=nan")
    assert err.step == 7 and str(err) == ("non-finite condensation loss at step 7 (loss=nan); "
                                          "lower the learning rate or check the inputs")
