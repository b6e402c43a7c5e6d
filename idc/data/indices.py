"""Index subsets of a patch store: a selection saved as a 1-D integer .npy array of patch indices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def load_indices(path: str | os.PathLike, n_total: int) -> np.ndarray:
    """An index subset saved as a 1-D integer .npy array, checked against the store size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file not found: {path}")
    try:
        indices = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"index file {path} is not a readable .npy array: {err}") from err
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"index file {path} must hold a 1-D integer array, got {indices.dtype} {indices.shape}")
    if indices.size == 0:
        raise ValueError(f"index file {path} is empty")
    if indices.min() < 0 or indices.max() >= n_total:
        raise ValueError(
            f"index file {path} has indices outside [0, {n_total}) of the patch store "
            f"(min {indices.min()}, max {indices.max()})"
        )
    unique, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        # A selection is a subset: a repeated index would train on (or export) a pair twice.
        raise ValueError(
            f"index file {path} repeats indices ({int((counts > 1).sum())} of them, "
            f"e.g. {int(unique[counts > 1][0])}); a selection lists each pair once"
        )
    return indices.astype(np.int64)
