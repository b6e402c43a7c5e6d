"""K-Center Greedy (Sener & Savarese, 2018), as in DeepCore's ``kCenterGreedy``.

The first centre is drawn uniformly with `rng`; every further centre is the candidate farthest
(Euclidean) from its nearest chosen centre. Instead of the full N x N distance matrix, each step
updates the per-candidate distance to the nearest centre with the distances to the newest centre
only, as ||x||^2 - 2 x.c + ||c||^2 (one matrix-vector product; float64 by default so the
expansion loses nothing that matters), in row chunks of at most `chunk_elements` feature values.
Memory stays O(N D) for the features plus O(N) whatever the group size (a 6,000-candidate group
with 12,288 pixel values per patch fits easily), on the GPU when `device` says so. Ties go to the
lowest index.
"""

from __future__ import annotations

import numpy as np
import torch

from idc.device import resolve_device
from idc.select.validation import (
    as_sorted_indices,
    check_selection_args,
    resolve_dtype,
)


def select_kcenter(
    features: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    images: np.ndarray | None = None,
    device: str | torch.device = "auto",
    precision: str = "float64",
    chunk_elements: int = 2**24,
) -> np.ndarray:
    """Select n indices by K-Center Greedy on `features` (N, D)."""
    n_candidates = check_selection_args(
        features, n, rng, method="kcenter", images=images, need_feature_dims=True
    )
    if chunk_elements < 1:
        raise ValueError(f"kcenter: chunk_elements must be >= 1, got {chunk_elements}")
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision)
    rows_per_chunk = max(1, int(chunk_elements) // features.shape[1])
    with torch.no_grad():
        x = torch.tensor(features, dtype=dtype, device=torch_device)
        squared_norms = torch.einsum("ij,ij->i", x, x)  # no (N, D) temporary
        nearest = torch.full((n_candidates,), float("inf"), dtype=dtype, device=torch_device)
        newest = int(rng.integers(n_candidates))
        chosen = [newest]
        for _ in range(n - 1):
            centre = x[newest]
            for start in range(0, n_candidates, rows_per_chunk):
                stop = min(start + rows_per_chunk, n_candidates)
                block = squared_norms[start:stop] - 2.0 * (x[start:stop] @ centre)
                block += squared_norms[newest]
                block.clamp_(min=0.0)  # rounding can dip below zero for (near-)duplicates
                torch.minimum(nearest[start:stop], block, out=nearest[start:stop])
            # Chosen centres get -1: below any squared distance, and min() keeps it there.
            nearest[newest] = -1.0
            newest = int(torch.argmax(nearest).item())
            chosen.append(newest)
    return as_sorted_indices(chosen)
