"""What the two long loops (SR training, condensation) share: stop signals that end a run at the
next step boundary with a checkpoint, the non-finite-loss error, run fingerprints (whether a
checkpoint may be resumed) and seed derivation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# SIGTERM: what SLURM and Snakemake send before killing a job; SIGUSR1: a batch system's warning
# signal ahead of the time limit.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


# ----------------------------------------------------------------------------------------------
# Stop signals
# ----------------------------------------------------------------------------------------------
class StopFlag:
    """Records the first stop signal; a loop polls `signum` at its step boundaries."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.signum: int | None = None
        self._log = log

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return
        if self._log is not None:
            self._log.warning("%s received: will checkpoint and stop after the current step",
                              signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str | None:
        """The signal's name (SIGTERM, SIGUSR1), None before one arrived."""
        return None if self.signum is None else signal.Signals(self.signum).name


@contextlib.contextmanager
def stop_signals(signals: Sequence[int] = STOP_SIGNALS, *, log: logging.Logger | None = None) -> Iterator[StopFlag]:
    """Handlers that set a StopFlag instead of ending the process, the previous handlers restored
    on exit. Signals can be caught only in the main thread: elsewhere the flag never rises.
    `log`: the loop's logger, told when the first signal arrives."""
    flag = StopFlag(log)
    if threading.current_thread() is not threading.main_thread():
        logger.debug("not in the main thread: stop signals are not intercepted")
        yield flag
        return
    previous = {s: signal.signal(s, flag) for s in signals}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """For data-loader workers (a `worker_init_fn`): they must outlive a stop signal sent to the
    whole process group, so the main process can finish its step and checkpoint."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


class RunInterrupted(RuntimeError):
    """A stop signal arrived and the state was checkpointed; a rerun continues from there."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; `step` is the first bad step where it is known."""

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


# ----------------------------------------------------------------------------------------------
# Run fingerprints: a checkpoint is resumed only by a run of the same identity
# ----------------------------------------------------------------------------------------------
def fingerprint_digest(identity: Mapping[str, Any]) -> str:
    """A short stable text for a run's identity (settings, seed, inputs): sha256 of its JSON with
    sorted keys (values JSON cannot hold are written as text)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def file_identity(path: Path) -> dict[str, Any]:
    """An input file as it stands: resolved path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys of `new` whose values differ in `old` (in `new`'s order): what a warning about a
    discarded checkpoint names."""
    return [k for k, v in new.items() if old.get(k) != v]


# ----------------------------------------------------------------------------------------------
# Seeds
# ----------------------------------------------------------------------------------------------
def derive_seed(seed: int, *keys: int | str) -> int:
    """An independent, reproducible seed for one job or random component: `seed` mixed with
    `keys` (ints as they are, names by their CRC-32) through numpy's SeedSequence."""
    entropy = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence([int(seed), *entropy]).generate_state(1)[0])
