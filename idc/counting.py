"""Counting conventions shared by selection (`idc.select`) and condensation (`idc.condense`).

* ``n_for_ratio(N, r) = floor(r N)`` with r read as the decimal it is written as (so float noise
  such as 0.29 * 100 = 28.999... cannot lose a patch): r = 10% of 120,765 = 12,076.5 gives the
  paper's 12,076. Every method keeps this many patches, so their budgets are equal.
* Shares of a whole-number total are rounded by the largest-remainder method: every part first
  gets the floor of its exact share, and the parts still missing go one each to the largest
  fractional parts, equal ones to the earlier (lower index) part. `hand_out_leftovers` is that
  last step; `largest_remainder` applies it to shares proportional to integer weights.

All arithmetic is in integers, so no float error can move a patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np


def n_for_ratio(n_candidates: int, ratio: float) -> int:
    """Number of patches kept at ratio r: floor(r N), at least 1 (see the module docstring)."""
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if n_candidates < 1:
        raise ValueError(f"the patch set is empty (N={n_candidates})")
    count = math.floor(Decimal(str(float(ratio))) * int(n_candidates))
    if count < 1:
        raise ValueError(f"ratio {ratio} of N={n_candidates} keeps no patch")
    return int(count)


def hand_out_leftovers(floors: np.ndarray, remainders: Sequence[int] | np.ndarray, total: int) -> np.ndarray:
    """`floors` (int64 copy) plus one for each of the total - sum(floors) largest `remainders`,
    equal remainders to the lower index.

    The remainders are numerators over one common denominator, so comparing them compares the
    fractional parts; they are compared as Python integers, exact at any size.
    """
    result = np.array(floors, dtype=np.int64)
    missing = int(total) - int(result.sum())
    keys = [int(r) for r in remainders]
    order = sorted(range(len(keys)), key=lambda i: (-keys[i], i))  # larger remainder, then earlier
    result[order[:missing]] += 1
    return result


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to `weights` summing exactly to `total` (ties to lower index)."""
    weights = np.asarray(weights, dtype=np.int64)
    weight_sum = int(weights.sum())
    if weight_sum <= 0 or total < 0:
        raise ValueError(f"largest_remainder needs positive weights and total >= 0, got {total}")
    # Exact integer arithmetic: floor part and remainder of total * w / sum.
    floors, remainders = np.divmod(weights * int(total), weight_sum)
    return hand_out_leftovers(floors, remainders, total)
