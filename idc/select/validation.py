"""Argument checks shared by every selector: one clear error before any work starts."""

from __future__ import annotations

import numpy as np
import torch


def check_selection_args(
    features: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    method: str,
    images: np.ndarray | None = None,
    need_images: bool = False,
    need_feature_dims: bool = False,
) -> int:
    """Validate the common selector arguments and return N, the number of candidates.

    `features` must be a 2-D float array (N, D); `images`, when given or needed, a uint8 array
    (N, h, w, 3) with the same N. `n` must satisfy 1 <= n <= N.
    """
    if not isinstance(features, np.ndarray) or features.ndim != 2:
        shape = getattr(features, "shape", type(features).__name__)
        raise ValueError(f"{method}: features must be a 2-D array (N, D), got shape {shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{method}: features must be floating point, got dtype {features.dtype}")
    n_candidates = features.shape[0]
    if need_feature_dims and features.shape[1] < 1:
        raise ValueError(f"{method}: features need at least one dimension, got shape {features.shape}")
    if need_feature_dims and not np.isfinite(features).all():
        raise ValueError(f"{method}: features contain NaN or infinite values")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{method}: n must be an integer, got {n!r}")
    if n <= 0 or n > n_candidates:
        raise ValueError(f"{method}: n must be in [1, N={n_candidates}], got n={n}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{method}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if images is None:
        if need_images:
            raise ValueError(f"{method}: images (N, h, w, 3) uint8 LR patches are required")
    else:
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
            shape = getattr(images, "shape", type(images).__name__)
            raise ValueError(f"{method}: images must have shape (N, h, w, 3), got {shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"{method}: images must be uint8, got dtype {images.dtype}")
        if images.shape[0] != n_candidates:
            raise ValueError(
                f"{method}: images hold {images.shape[0]} patches but features hold {n_candidates}"
            )
    return int(n_candidates)


def resolve_dtype(precision: str) -> torch.dtype:
    """Map the `precision` hyper-parameter ('float32' or 'float64') to a torch dtype."""
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if precision not in dtypes:
        raise ValueError(f"precision must be one of {sorted(dtypes)}, got {precision!r}")
    return dtypes[precision]


def as_sorted_indices(indices: np.ndarray | list[int]) -> np.ndarray:
    """Sorted int64 copy of selected indices (the common return type of every selector)."""
    return np.sort(np.asarray(indices, dtype=np.int64))
