"""Random selection: n candidates drawn uniformly without replacement."""

from __future__ import annotations

import numpy as np

from idc.select.validation import as_sorted_indices, check_selection_args


def select_random(
    features: np.ndarray, n: int, *, rng: np.random.Generator, images: np.ndarray | None = None
) -> np.ndarray:
    """Uniform draw of n of the N candidates; `features` only fixes N (its width may be 0)."""
    n_candidates = check_selection_args(features, n, rng, method="random", images=images)
    return as_sorted_indices(rng.choice(n_candidates, size=n, replace=False))
