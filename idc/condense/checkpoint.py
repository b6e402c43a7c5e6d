"""Condensation checkpoints: one file per run (all packed instances), plain data only, written
atomically, carrying the checksum of its contents; resumed only by a run with the same
fingerprints (implementation version, extractor weights, settings, seed, real patches, number of
synthetic patches, per instance). The file plumbing and the reasons for refusing a checkpoint are
the ones SR training uses (`idc.runloop`); what is condensation's own is the state it saves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idc.condense.config import CondenseConfig, split_execution_settings
from idc.runloop import (
    CorruptCheckpointError,
    identity_change,
    implementation_change,
    read_checkpoint,
    state_digest,
    verify_checksum,
    write_checkpoint,
)
from idc.versions import IMPL_VERSIONS

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "idc-condense-checkpoint/2"
_WHAT = "condensation checkpoint"
_HINT = "delete it to restart"
# How a refusal names the inputs of a fingerprint that are not settings.
_INPUT_NAMES = {"real_shape": "real patches", "real_sum": "real patches"}


def extractor_digest(extractor: nn.Module) -> str:
    """SHA-256 of the extractor's weights (parameters and buffers by name, dtype, shape, values):
    a checkpoint is tied to the features it was optimised against, whatever file they came from."""
    from idc.archs.io import tensors_digest

    return tensors_digest(extractor.state_dict())


def content_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (its own `sha256` entry left out): written at save and
    compared on load, so a flipped byte in the synthetic patches is found, not resumed."""
    return state_digest({k: v for k, v in state.items() if k != "sha256"})


def fingerprint(cfg: CondenseConfig, seed: int, real_lr: torch.Tensor, n_synthetic: int, *,
                extractor_sha256: str | None = None) -> dict[str, Any]:
    """The identity of one instance's run. A checkpoint made with other execution settings may be
    resumed: they change how, not what, is computed."""
    d, _ = split_execution_settings(cfg.to_dict())
    return {"impl_version": IMPL_VERSIONS["condense"], "extractor_sha256": extractor_sha256,
            "config": d, "seed": int(seed), "real_shape": list(real_lr.shape),
            "real_sum": float(real_lr.double().sum()), "n_synthetic": int(n_synthetic)}


def stale_reason(checkpoint: dict[str, Any], fingerprints: list[dict[str, Any]]) -> str | None:
    """None when `checkpoint` belongs to the run of `fingerprints`; else what differs, for the log,
    for the first instance that differs: the implementation version, the extractor weights, or
    the changed settings and inputs (seed, real patches, n_synthetic); or the number of packed
    instances. (A checkpoint of an earlier version lacks the first two entries: it counts as
    another implementation.)"""
    old_prints = checkpoint.get("fingerprints")
    if old_prints == fingerprints:
        return None
    if not isinstance(old_prints, list) or not old_prints or not all(isinstance(p, dict) for p in old_prints):
        return "its fingerprints are missing or malformed"
    for old, new in zip(old_prints, fingerprints):
        if old != new:
            return (implementation_change("condense", old.get("impl_version", "unrecorded"))
                    or identity_change(old, new, digests={"extractor_sha256": "extractor weights"},
                                       names=_INPUT_NAMES))
    return f"another number of packed instances ({len(old_prints)} -> {len(fingerprints)})"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_checkpoint(path, {**state, "sha256": content_digest(state)})


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, verified against the checksum written at save (checkpoints of
    earlier versions carry none: loaded unverified, said in a debug line); CorruptCheckpointError
    (a ValueError) naming the file when it is unreadable, of another format or altered."""
    state = read_checkpoint(path, what=_WHAT, file_format=CHECKPOINT_FORMAT, hint=_HINT)
    expected = state.pop("sha256", None)
    if expected is None:
        logger.debug("condensation checkpoint %s carries no checksum (an earlier version): not verified", path)
    else:
        verify_checksum(path, expected, content_digest(state), what=_WHAT, hint=_HINT)
    return state


def check_instance_states(path: Path, states: Any, expected: list[dict[str, torch.Tensor | None]]) -> None:
    """CorruptCheckpointError naming the checkpoint unless it holds one state per instance whose
    optimised tensors have the shapes of this run's (`expected`: name -> tensor or None) and
    finite values (a copy would broadcast a wrong shape silently, and NaN would be optimised on)."""
    if not isinstance(states, list) or len(states) != len(expected):
        raise CorruptCheckpointError(
            f"{_WHAT} {path} holds {len(states) if isinstance(states, list) else 'no'} instance states, "
            f"expected {len(expected)}; {_HINT}")
    for k, (state, tensors) in enumerate(zip(states, expected)):
        for name, ours in tensors.items():
            theirs = state.get(name) if isinstance(state, dict) else None
            if ours is None:
                continue
            if not isinstance(theirs, torch.Tensor) or theirs.shape != ours.shape:
                shape = tuple(theirs.shape) if isinstance(theirs, torch.Tensor) else type(theirs).__name__
                raise CorruptCheckpointError(f"{_WHAT} {path}: instance {k} {name} is {shape}, "
                                             f"expected {tuple(ours.shape)}; {_HINT}")
            if not bool(torch.isfinite(theirs).all()):
                raise CorruptCheckpointError(f"{_WHAT} {path}: instance {k} {name} holds non-finite values; {_HINT}")


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors in nested dicts and lists (optimiser and assigner states) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj
