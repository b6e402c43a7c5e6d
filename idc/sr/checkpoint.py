"""Resume checkpoints: written atomically, verified by SHA-256 on reading, never executed.

Layout of a resume directory::

    ckpt_00012000.pt    torch.save of plain containers and tensors (loaded with weights_only=True)
    manifest.json       {"file", "sha256", "step", "fingerprint", "impl_version", "identity"},
                        replaced atomically after the file

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
from idc.runloop import changed_settings
from idc.versions import IMPL_VERSIONS

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


# Manifests written before the implementation version was recorded come from version 1 (the
# only one there was then).
_UNRECORDED_IMPL_VERSION = 1


def save_checkpoint(resume_dir: str | os.PathLike, payload: dict[str, Any], *, step: int, fingerprint: str,
                    identity: dict[str, Any] | None = None) -> Path:
    """Write ``payload`` as the newest checkpoint of ``resume_dir`` and drop older ones. The
    manifest records the training implementation version and ``identity`` (what ``fingerprint``
    digests), so that a later run can say why it does not resume."""
    resume_dir = Path(resume_dir)
    resume_dir.mkdir(parents=True, exist_ok=True)
    path = resume_dir / f"ckpt_{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp)
    manifest = {"file": path.name, "sha256": _sha256(path), "step": step, "fingerprint": fingerprint,
                "impl_version": IMPL_VERSIONS["train"],
                "identity": json.loads(json.dumps(identity, default=str))}
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


def stale_reason(manifest: dict[str, Any], fingerprint: str, identity: dict[str, Any] | None = None) -> str | None:
    """None when the checkpoint of ``manifest`` belongs to the run of ``fingerprint`` and of this
    implementation version; else what differs, for the log line that says why it is discarded."""
    recorded = manifest.get("impl_version", _UNRECORDED_IMPL_VERSION)
    if recorded != IMPL_VERSIONS["train"]:
        return f"implementation version train {recorded} -> {IMPL_VERSIONS['train']}"
    if manifest["fingerprint"] == fingerprint:
        return None
    old = manifest.get("identity")
    if isinstance(old, dict) and identity is not None:
        new = json.loads(json.dumps(identity, default=str))
        changed = changed_settings(old.get("config") or {}, new.get("config") or {})
        changed += [k for k in new if k != "config" and old.get(k) != new[k]]
        if changed:
            return f"other settings ({', '.join(changed)})"
    return "other settings"


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
