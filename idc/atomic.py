"""Atomic file writes: a file under its final name is complete, durable and readable by the group.

Every writer of the package goes through here. The data go to a hidden temporary name in the
target's own folder, ``.<name>.tmp-<pid>-<token>`` (same file system, so the rename is atomic;
the pid lets `remove_stale_temporaries` recognise what a killed process left behind). The
temporary file is flushed and fsynced, renamed onto the target with `os.replace`, and the folder
is fsynced where the operating system allows, so the rename itself survives a crash.

The result has the mode ``0o666 & ~umask`` of any file made by ``open(path, "w")`` (0644 under
umask 022, 0664 under 002). `tempfile.mkstemp` would make it 0600 and, after the rename, leave a
model, a prepared image or a selection unreadable to the rest of a group on a shared cluster.

On any exception the temporary file is removed and an existing target is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMPORARY_GLOB",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "move_into_place",
    "remove_stale_temporaries",
    "staging_folder",
    "temporary_path",
]

logger = logging.getLogger(__name__)

# Matches every temporary name `temporary_path` makes, in the folder of its target.
TEMPORARY_GLOB = ".*.tmp-*"


def temporary_path(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden temporary name next to ``target`` (the file itself is not created)."""
    target = Path(target)
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def staging_folder(target: str | os.PathLike[str]) -> Path:
    """A new empty hidden folder next to ``target`` (named as by `temporary_path`) in which a
    whole output folder is assembled before it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = temporary_path(target)
    folder.mkdir()
    return folder


def _fsync_file(path: Path) -> None:
    # POSIX fsyncs through a read-only descriptor; Windows needs one opened for writing.
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable; skipped where folders cannot be opened or synced."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some network and FUSE file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def move_into_place(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *, synced: bool = False) -> Path:
    """fsync ``tmp`` (unless ``synced``: the caller already did), rename it onto ``target``,
    fsync the folder. For writers that manage their own temporary file (`temporary_path`)."""
    tmp, target = Path(tmp), Path(target)
    if not synced:
        _fsync_file(tmp)
    os.replace(tmp, target)
    _fsync_folder(target.parent)
    return target


def _create_temporary(target: Path) -> tuple[Path, int]:
    """A new temporary file next to ``target`` and a descriptor open for writing it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    # O_EXCL: the name is ours alone; 0o666 is filtered by the umask as for any new file.
    return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` for a library that writes to a path itself
    (torch.save, safetensors, h5py, pandas, matplotlib); on success it becomes ``target``.

    The temporary name has no meaningful suffix: give such libraries the format explicitly,
    and give numpy an open file (`atomic_open`), since ``np.save`` appends ``.npy`` to a path.
    """
    target = Path(target)
    tmp, fd = _create_temporary(target)
    try:
        umask_mode = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    try:
        yield tmp
        # Some libraries (safetensors) write a private temporary file of their own and rename it
        # onto the path: give the result the mode the umask gave the file created here.
        if stat.S_IMODE(os.stat(tmp).st_mode) != umask_mode:
            os.chmod(tmp, umask_mode)
        move_into_place(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Yield an open file whose contents become ``target`` when the block ends without error."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open: mode must write a new file ('w', 'wb', ...), got {mode!r}")
    target = Path(target)
    tmp, fd = _create_temporary(target)
    try:
        try:
            handle = open(fd, mode, **open_kwargs)
        except BaseException:
            os.close(fd)
            raise
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        move_into_place(tmp, target, synced=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the path."""
    with atomic_open(target, "wb") as handle:
        handle.write(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    return atomic_write_bytes(target, text.encode(encoding))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove what earlier, killed attempts at writing ``path`` left next to it: temporary files
    and staging folders (``.<name>.tmp-<pid>-<token>``, or ``.<name>.tmp-<pid>`` from older
    versions) and spool folders (``.<name>.spool-<pid>-...``) of processes that no longer run.
    Returns them."""
    path = Path(path)
    removed = []
    own = re.compile(rf"\.{re.escape(path.name)}\.(?:tmp|spool)-(\d+)(?:-.*)?")
    for stale in path.parent.iterdir():
        match = own.fullmatch(stale.name)
        if not match or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
        logger.info("removed %s left by an interrupted earlier attempt", stale)
    return removed
