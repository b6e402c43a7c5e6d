"""How many synthetic patches each instance (training image) gets.

The paper writes n = r N per image (Algorithm 1: |x^_c| = r |x_c|) and gives every method of
Table 1 the same 12,076 pairs (r = 10% of 120,765). r N_c is rarely a whole number, so a
rounding rule is needed. Two rules, named by `CondenseConfig.budget`:

* ``"equal"`` (default): the baselines' total floor(r N) (`idc.counting.n_for_ratio`,
  N = every patch of the training set) split over the images by the largest-remainder method on
  r N_c. Every image first gets floor(r N_c); the floor(r N) - sum floor(r N_c) patches left
  (fewer than the number of images) go one each to the images with the largest fractional
  parts of r N_c; equal fractional parts go to the earlier position in `patch_counts` (the stage
  lists images by ascending image id). So each image gets floor(r N_c) or ceil(r N_c), and IDC
  trains on exactly as many pairs as Random, Herding, K-Center and DCSR.
  An image with r N_c < 1 gets 1 patch if its fraction ranks among the leftovers, else 0. An
  image with 0 is not optimised: the stage writes an empty (0, 3, h, w) file and a log saying
  why, and the up-sampled store simply has no patches of it.
* ``"ceil_per_image"``: max(1, ceil(r N_c)) per image, the rule used before the budgets were
  made equal. It gives more pairs than the baselines (e.g. 400 instead of 350 for 100 images of
  35 patches at r = 10%); kept so earlier runs can be reproduced.

r is read as the decimal it is written as (as `n_for_ratio` does), and the arithmetic is exact
in integers, so no float error can move a patch (0.1 * 120,765 = 12,076.5 -> 12,076).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import numpy as np

from idc.counting import hand_out_leftovers, n_for_ratio

BUDGETS = ("equal", "ceil_per_image")


def _exact_ratio(ratio: float) -> Fraction:
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    return Fraction(Decimal(str(float(ratio))))


def _checked_counts(patch_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    counts = np.asarray(patch_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"patch_counts must be a non-empty 1-D sequence, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        if not np.all(np.isfinite(counts)) or not np.all(counts == np.round(counts)):
            raise ValueError("patch_counts must be whole numbers")
    counts = counts.astype(np.int64)
    if counts.min() < 1:
        raise ValueError(f"every image needs at least one real patch (position {int(np.argmin(counts))} has "
                         f"{int(counts.min())})")
    return counts


def allocate_synthetic(patch_counts: Sequence[int] | np.ndarray, ratio: float, budget: str = "equal") -> np.ndarray:
    """Synthetic patches per image (int64, same order as `patch_counts`) under rule `budget`.

    `patch_counts` are the real patch counts N_c of *all* images of the training set, so every
    image's share is fixed by the set alone and each per-image job can compute its own. See the
    module docstring for the rules, the tie-break and what an image with r N_c < 1 gets.
    """
    counts = _checked_counts(patch_counts)
    r = _exact_ratio(ratio)
    # floor and remainder of r N_c = p N_c / q in Python integers: exact for any written ratio
    # (the remainders share the denominator q, so comparing them compares the fractions).
    parts = [divmod(int(c) * r.numerator, r.denominator) for c in counts]
    floors = np.array([f for f, _ in parts], dtype=np.int64)
    if budget == "ceil_per_image":
        return np.maximum(1, floors + np.array([m > 0 for _, m in parts], dtype=np.int64))
    if budget != "equal":
        raise ValueError(f"budget {budget!r} is not one of {', '.join(BUDGETS)}")
    total = n_for_ratio(int(counts.sum()), float(ratio))  # the baselines' count, by the same code
    missing = total - int(floors.sum())
    # sum floor(r N_c) <= floor(r N) <= r N = sum r N_c < sum floor(r N_c) + K
    assert 0 <= missing < counts.size, (total, int(floors.sum()), counts.size)
    # The shares rounded are r N_c (not floor(r N) N_c / N as in `largest_remainder`), so each
    # image keeps floor(r N_c) or ceil(r N_c); only the hand-out of the leftovers is shared.
    return hand_out_leftovers(floors, [m for _, m in parts], total)


def describe_allocation(counts: np.ndarray) -> dict[str, int | dict[str, int]]:
    """Total and histogram (count -> number of images) of an allocation, for logs and reports."""
    values, freq = np.unique(np.asarray(counts, dtype=np.int64), return_counts=True)
    return {"total": int(np.sum(counts)), "images": int(np.size(counts)),
            "histogram": {str(int(v)): int(f) for v, f in zip(values, freq)}}
