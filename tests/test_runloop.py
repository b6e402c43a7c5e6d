"""The pieces both long loops share: stop signals, run fingerprints, seed derivation."""

from __future__ import annotations

import os
import signal
import threading
import zlib

import numpy as np
import pytest

from idc.runloop import (
    NonFiniteLossError,
    StopFlag,
    changed_settings,
    derive_seed,
    file_identity,
    fingerprint_digest,
    stop_signals,
)


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
