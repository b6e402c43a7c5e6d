"""Which torch device a stage runs on: one reading of the `device` setting for every stage."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA when available, else the CPU; anything else as torch reads it.

    A CUDA device on a machine without one, a GPU index the machine does not have, or a string
    torch does not know raise ValueError here, before any data is read, rather than an obscure
    error half-way through a run.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1', ...)") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return resolved
