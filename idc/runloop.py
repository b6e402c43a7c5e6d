"""What the two long loops (SR training, condensation) share: stop signals that end a run at the
next step boundary with a checkpoint, the non-finite-loss error, resuming (run fingerprints, the
one-line reason a checkpoint of another run is refused, checkpoint files written atomically and
verified on reading) and seed derivation.

Each loop keeps only its own: what state it saves and how its files are laid out
(`idc.sr.checkpoint`: a file per checkpoint and a manifest holding its SHA-256;
`idc.condense.checkpoint`: one file holding its own checksum).

torch is imported only by the functions that read or write checkpoints: the workflow imports this
module for `derive_seed` while it builds the job graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idc.atomic import atomic_path
from idc.versions import IMPL_VERSIONS

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


def plain_identity(identity: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`identity` as it reads back from JSON (tuples as lists, other values as text): the form a
    recorded identity is compared in."""
    return json.loads(json.dumps(identity, default=str))


def implementation_change(stage: str, recorded: Any) -> str | None:
    """None when `recorded` is the current implementation version of `stage` (`IMPL_VERSIONS`);
    else the reason a checkpoint made under it is not resumed: its results would differ."""
    current = IMPL_VERSIONS[stage]
    return None if recorded == current else f"implementation version {stage} {recorded} -> {current}"


def identity_change(old: Mapping[str, Any] | None, new: Mapping[str, Any], *,
                    digests: Mapping[str, str] | None = None, names: Mapping[str, str] | None = None) -> str:
    """Why a checkpoint of the run identity `old` is not resumed by a run of `new` (a run's
    identity: its result-defining settings under "config", its inputs under other keys), in a
    few words: the first input digest that differs (`digests`: key -> what it digests, e.g.
    "extractor weights"), else "other settings" and the changed keys, those of "config" first,
    then the other keys by their `names` (default: the key); "other settings" alone when `old`
    was not recorded. Call it when the two identities are known to differ."""
    if not isinstance(old, Mapping):
        return "other settings"
    old, new = plain_identity(old), plain_identity(new)
    digests = digests or {}
    for key, what in digests.items():
        if old.get(key) != new.get(key):
            return f"other {what} (sha256 {str(old.get(key))[:12]} -> {str(new.get(key))[:12]})"
    changed = changed_settings(old.get("config") or {}, new.get("config") or {})
    for key, value in new.items():
        name = (names or {}).get(key, key)
        if key != "config" and key not in digests and old.get(key) != value and name not in changed:
            changed.append(name)
    return f"other settings ({', '.join(changed)})" if changed else "other settings"


# ----------------------------------------------------------------------------------------------
# Checkpoint files: written atomically, verified on reading, plain data only
# ----------------------------------------------------------------------------------------------
class CorruptCheckpointError(ValueError):
    """A checkpoint exists but cannot be trusted: unreadable, of another format, or not what was
    written. Never skipped: the message says what to delete to start over."""


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    """Add a nested state (dicts, lists, tensors, plain values) to `digest`, in a fixed order."""
    import torch

    if isinstance(obj, torch.Tensor):
        values = obj.detach().cpu().contiguous()
        digest.update(repr(("tensor", str(values.dtype), tuple(values.shape))).encode())
        digest.update(values.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        digest.update(repr(("dict", len(obj))).encode())
        for key in sorted(obj, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(repr(("list", len(obj))).encode())
        for value in obj:
            _feed(digest, value)
    else:
        digest.update(repr(obj).encode())


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a nested state's contents (tensors by dtype, shape and bytes), independent of
    how a file stores it: a checksum a checkpoint can carry inside itself."""
    digest = hashlib.sha256()
    _feed(digest, dict(state))
    return digest.hexdigest()


def write_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """torch.save `state` (plain containers and tensors) to `path` atomically: under a temporary
    name in the same folder, renamed onto `path` once complete, so a kill at any moment leaves the
    previous file or the new one, never a part."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike, *, what: str, file_format: Any, hint: str,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """The state written by `write_checkpoint`, loaded as plain data only (weights_only: a
    checkpoint is never executed), whose "format" entry is `file_format`. CorruptCheckpointError
    naming `what` and `path`, and ending in `hint` (what to delete), when it cannot be read or is
    of another format."""
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged archives; none is a valid state
        raise CorruptCheckpointError(f"{what} {path} is corrupt or truncated ({err}); {hint}") from err
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if not isinstance(state, dict) or found != file_format:
        raise CorruptCheckpointError(f"{what} {path} has format {found!r}, expected {file_format!r}; {hint}")
    return state


def verify_checksum(path: str | os.PathLike, expected: str, actual: str, *, what: str, hint: str) -> None:
    """CorruptCheckpointError unless the checksum computed on reading (`actual`) is the one
    written at save (`expected`)."""
    if actual != expected:
        raise CorruptCheckpointError(f"{what} {path} does not match the checksum written at save "
                                     f"(truncated or corrupt); {hint}")


# ----------------------------------------------------------------------------------------------
# Seeds
# ----------------------------------------------------------------------------------------------
def derive_seed(seed: int, *keys: int | str) -> int:
    """An independent, reproducible seed for one job or random component: `seed` mixed with
    `keys` (ints as they are, names by their CRC-32) through numpy's SeedSequence."""
    entropy = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence([int(seed), *entropy]).generate_state(1)[0])
