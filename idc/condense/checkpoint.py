"""Condensation checkpoints: one file per run (all packed instances), plain data only, written
atomically; resumed only by a run with the same fingerprints (settings, seed, real patches,
number of synthetic patches, per instance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from idc.atomic import atomic_path
from idc.condense.config import CondenseConfig, split_execution_settings
from idc.runloop import changed_settings

CHECKPOINT_FORMAT = "idc-condense-checkpoint/2"


def fingerprint(cfg: CondenseConfig, seed: int, real_lr: torch.Tensor, n_synthetic: int) -> dict[str, Any]:
    """The identity of one instance's run. A checkpoint made with other execution settings may be
    resumed: they change how, not what, is computed."""
    d, _ = split_execution_settings(cfg.to_dict())
    return {"config": d, "seed": int(seed), "real_shape": list(real_lr.shape),
            "real_sum": float(real_lr.double().sum()), "n_synthetic": int(n_synthetic)}


def stale_reason(checkpoint: dict[str, Any], fingerprints: list[dict[str, Any]]) -> str | None:
    """None when `checkpoint` belongs to the run of `fingerprints`; else what differs (the
    changed settings, or that the seed, real patches or n_synthetic differ)."""
    if checkpoint["fingerprints"] == fingerprints:
        return None
    changed = changed_settings(checkpoint["fingerprints"][0]["config"], fingerprints[0]["config"])
    return ", ".join(changed) or "seed, real patches or n_synthetic"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    except Exception as err:  # truncated/corrupt files must never be taken as valid
        raise ValueError(f"condensation checkpoint {path} is corrupt or truncated ({err}); "
                         "delete it to restart") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"condensation checkpoint {path} is not a {CHECKPOINT_FORMAT} file")
    return state


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors in nested dicts and lists (optimiser and assigner states) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj
