"""Resume checkpoints: written atomically, verified by SHA-256 on reading, never executed.

Layout of a resume directory::

    ckpt_00012000.pt    torch.save of plain containers and tensors (loaded with weights_only=True)
    manifest.json       {"file", "sha256", "step", "fingerprint"}, replaced atomically after the file

A new checkpoint file is complete and synced before the manifest points at it, and the previous one
is removed only afterwards, so a kill at any moment leaves a consistent pair. A manifest whose file
is missing, truncated or altered raises :class:`CorruptCheckpointError`; it is never skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from idc.atomic import TEMPORARY_GLOB, atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class CorruptCheckpointError(ValueError):
    """A resume checkpoint exists but cannot be trusted."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(resume_dir: str | os.PathLike, payload: dict[str, Any], *, step: int, fingerprint: str) -> Path:
    """Write ``payload`` as the newest checkpoint of ``resume_dir`` and drop older ones."""
    resume_dir = Path(resume_dir)
    resume_dir.mkdir(parents=True, exist_ok=True)
    path = resume_dir / f"ckpt_{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp)
    manifest = {"file": path.name, "sha256": _sha256(path), "step": step, "fingerprint": fingerprint}
    atomic_write_text(resume_dir / MANIFEST, json.dumps(manifest, indent=1))
    for old in resume_dir.glob("ckpt_*.pt"):
        if old.name != path.name:
            old.unlink(missing_ok=True)
    logger.info("checkpoint at step %d written to %s", step, path)
    return path


def read_manifest(resume_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of ``resume_dir``, or None when there is no checkpoint."""
    path = Path(resume_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not {"file", "sha256", "step", "fingerprint"} <= manifest.keys():
            raise ValueError("missing keys")
    except ValueError as err:
        raise CorruptCheckpointError(
            f"resume manifest {path} is unreadable ({err}); delete {Path(resume_dir)} to start over"
        ) from err
    return manifest


def load_checkpoint(resume_dir: str | os.PathLike, manifest: dict[str, Any], map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint named by ``manifest``, after verifying its hash."""
    resume_dir = Path(resume_dir)
    path = resume_dir / manifest["file"]
    hint = f"delete {resume_dir} to start over"
    if not path.is_file():
        raise CorruptCheckpointError(f"checkpoint {path} named in {resume_dir / MANIFEST} is missing; {hint}")
    if _sha256(path) != manifest["sha256"]:
        raise CorruptCheckpointError(f"checkpoint {path} is truncated or corrupt (SHA-256 mismatch); {hint}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged archives
        raise CorruptCheckpointError(f"checkpoint {path} cannot be read ({err}); {hint}") from err
    if payload.get("format") != FORMAT_VERSION:
        raise CorruptCheckpointError(f"checkpoint {path} has format {payload.get('format')}, expected {FORMAT_VERSION}; {hint}")
    return payload


def clear_checkpoints(resume_dir: str | os.PathLike) -> None:
    """Remove a resume directory's checkpoint files (after the run's outputs are complete)."""
    resume_dir = Path(resume_dir)
    if not resume_dir.is_dir():
        return
    (resume_dir / MANIFEST).unlink(missing_ok=True)
    for path in resume_dir.glob("ckpt_*.pt"):
        path.unlink(missing_ok=True)
    for path in resume_dir.glob(TEMPORARY_GLOB):
        path.unlink(missing_ok=True)
    try:
        resume_dir.rmdir()
    except OSError:
        logger.debug("resume directory %s not empty; left in place", resume_dir)
