"""Resume checkpoints: written atomically, verified by SHA-256 on reading, never executed.

Layout of a resume directory::

    ckpt_00012000.pt    torch.save of plain containers and tensors (loaded with weights_only=True)
    manifest.json       {"file", "sha256", "step", "fingerprint", "impl_version", "identity"},
                        replaced atomically after the file

A new checkpoint file is complete and synced before the manifest points at it, and the previous one
is removed only afterwards, so a kill at any moment leaves a consistent pair. A manifest whose file
is missing, truncated or altered raises :class:`CorruptCheckpointError`; it is never skipped.
The file plumbing and the reasons for refusing a checkpoint are the ones condensation uses
(`idc.runloop`); what is training's own is this layout and the state it saves.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from idc.atomic import TEMPORARY_GLOB, atomic_write_text
from idc.runloop import (
    CorruptCheckpointError,
    file_sha256,
    identity_change,
    implementation_change,
    plain_identity,
    read_checkpoint,
    verify_checksum,
    write_checkpoint,
)
from idc.versions import IMPL_VERSIONS

__all__ = ["MANIFEST", "CorruptCheckpointError", "clear_checkpoints", "load_checkpoint", "read_manifest",
           "save_checkpoint", "stale_reason"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

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
    path = write_checkpoint(resume_dir / f"ckpt_{step:08d}.pt", {"format": FORMAT_VERSION, **payload})
    manifest = {"file": path.name, "sha256": file_sha256(path), "step": step, "fingerprint": fingerprint,
                "impl_version": IMPL_VERSIONS["train"], "identity": plain_identity(identity)}
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
    reason = implementation_change("train", manifest.get("impl_version", _UNRECORDED_IMPL_VERSION))
    if reason is not None or manifest["fingerprint"] == fingerprint:
        return reason
    # Manifests of earlier versions recorded no identity: identity_change then says "other settings".
    return identity_change(manifest.get("identity"), identity) if identity is not None else "other settings"


def load_checkpoint(resume_dir: str | os.PathLike, manifest: dict[str, Any], map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint named by ``manifest``, after verifying its hash."""
    resume_dir = Path(resume_dir)
    path = resume_dir / manifest["file"]
    hint = f"delete {resume_dir} to start over"
    if not path.is_file():
        raise CorruptCheckpointError(f"checkpoint {path} named in {resume_dir / MANIFEST} is missing; {hint}")
    # The file's bytes are checked before torch reads them: a damaged archive never gets that far.
    verify_checksum(path, manifest["sha256"], file_sha256(path), what="checkpoint", hint=hint)
    return read_checkpoint(path, what="checkpoint", file_format=FORMAT_VERSION, hint=hint, map_location=map_location)


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
