"""Condensation checkpoints: one file per run (all packed instances), plain data only, written
atomically; resumed only by a run with the same fingerprints (implementation version, extractor
weights, settings, seed, real patches, number of synthetic patches, per instance)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idc.atomic import atomic_path
from idc.condense.config import CondenseConfig, split_execution_settings
from idc.runloop import changed_settings
from idc.versions import IMPL_VERSIONS

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "idc-condense-checkpoint/2"


def extractor_digest(extractor: nn.Module) -> str:
    """SHA-256 of the extractor's weights (parameters and buffers by name, dtype, shape, values):
    a checkpoint is tied to the features it was optimised against, whatever file they came from."""
    from idc.archs.io import tensors_digest

    return tensors_digest(extractor.state_dict())


def _feed(digest: Any, obj: Any) -> None:
    """Add a nested state (dicts, lists, tensors, plain values) to `digest`, in a fixed order."""
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


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (its own `sha256` entry left out): written at save and
    compared on load, so a flipped byte in the synthetic patches is found, not resumed."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != "sha256"})
    return digest.hexdigest()


def fingerprint(cfg: CondenseConfig, seed: int, real_lr: torch.Tensor, n_synthetic: int, *,
                extractor_sha256: str | None = None) -> dict[str, Any]:
    """The identity of one instance's run. A checkpoint made with other execution settings may be
    resumed: they change how, not what, is computed."""
    d, _ = split_execution_settings(cfg.to_dict())
    return {"impl_version": IMPL_VERSIONS["condense"], "extractor_sha256": extractor_sha256,
            "config": d, "seed": int(seed), "real_shape": list(real_lr.shape),
            "real_sum": float(real_lr.double().sum()), "n_synthetic": int(n_synthetic)}


def stale_reason(checkpoint: dict[str, Any], fingerprints: list[dict[str, Any]]) -> str | None:
    """None when `checkpoint` belongs to the run of `fingerprints`; else what differs, for the log:
    the implementation version, the extractor weights, the changed settings, or that the seed,
    real patches or n_synthetic differ. (A checkpoint of an earlier version lacks the first two
    entries: it counts as another implementation.)"""
    old_prints = checkpoint.get("fingerprints")
    if old_prints == fingerprints:
        return None
    if not isinstance(old_prints, list) or not old_prints or not isinstance(old_prints[0], dict):
        return "its fingerprints are missing or malformed"
    old, new = old_prints[0], fingerprints[0]
    if old.get("impl_version") != new["impl_version"]:
        return (f"implementation version condense {old.get('impl_version', 'unrecorded')} -> "
                f"{new['impl_version']}")
    if old.get("extractor_sha256") != new["extractor_sha256"]:
        return (f"other extractor weights (sha256 {str(old.get('extractor_sha256'))[:12]} -> "
                f"{str(new['extractor_sha256'])[:12]})")
    changed = changed_settings(old.get("config") or {}, new["config"])
    return "other settings (" + (", ".join(changed) or "seed, real patches or n_synthetic") + ")"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({**state, "sha256": state_digest(state)}, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, verified against the checksum written at save (checkpoints of
    earlier versions carry none: loaded unverified, said in a debug line); ValueError naming the
    file when it is unreadable, of another format or altered."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    except Exception as err:  # truncated/corrupt files must never be taken as valid
        raise ValueError(f"condensation checkpoint {path} is corrupt or truncated ({err}); "
                         "delete it to restart") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"condensation checkpoint {path} is not a {CHECKPOINT_FORMAT} file")
    expected = state.pop("sha256", None)
    if expected is None:
        logger.debug("condensation checkpoint %s carries no checksum (an earlier version): not verified", path)
    elif state_digest(state) != expected:
        raise ValueError(f"condensation checkpoint {path} does not match the checksum written at save "
                         "(corrupt file); delete it to restart")
    return state


def check_instance_states(path: Path, states: Any, expected: list[dict[str, torch.Tensor | None]]) -> None:
    """ValueError naming the checkpoint unless it holds one state per instance whose optimised
    tensors have the shapes of this run's (`expected`: name -> tensor or None) and finite values
    (a copy would broadcast a wrong shape silently, and NaN would be optimised on)."""
    if not isinstance(states, list) or len(states) != len(expected):
        raise ValueError(f"condensation checkpoint {path} holds {len(states) if isinstance(states, list) else 'no'} "
                         f"instance states, expected {len(expected)}; delete it to restart")
    for k, (state, tensors) in enumerate(zip(states, expected)):
        for name, ours in tensors.items():
            theirs = state.get(name) if isinstance(state, dict) else None
            if ours is None:
                continue
            if not isinstance(theirs, torch.Tensor) or theirs.shape != ours.shape:
                shape = tuple(theirs.shape) if isinstance(theirs, torch.Tensor) else type(theirs).__name__
                raise ValueError(f"condensation checkpoint {path}: instance {k} {name} is {shape}, "
                                 f"expected {tuple(ours.shape)}; delete it to restart")
            if not bool(torch.isfinite(theirs).all()):
                raise ValueError(f"condensation checkpoint {path}: instance {k} {name} holds non-finite values; "
                                 "delete it to restart")


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors in nested dicts and lists (optimiser and assigner states) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj
