"""The paper's selection protocol (C.2): split the whole set at random into 20 groups, let each
group select its share, merge.

Counting conventions (the total n_total is `idc.counting.n_for_ratio`, floor(r N)):

* The groups come from ``numpy.array_split`` of a random permutation, so their sizes differ by at
  most one. Each group's share is n_total * |group| / N, rounded by the largest-remainder
  method (`idc.counting.largest_remainder`, ties to the earlier group), so shares sum exactly
  to n_total and never exceed a group.
* Each group selects with its own generator, seeded from `rng` in group order; a group whose
  share is zero selects nothing. Everything a method computes happens inside the group: Herding
  matches the group's mean, K-Center covers the group, DCSR thresholds at the group's mean (or
  median) score and clusters the group's survivors.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from idc.counting import largest_remainder
from idc.progress import format_duration

logger = logging.getLogger(__name__)

PAPER_N_SPLITS = 20


def split_groups(n_candidates: int, n_splits: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random partition of range(N) into n_splits groups whose sizes differ by at most one."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    return np.array_split(rng.permutation(n_candidates), n_splits)


def split_shares(group_sizes: list[int] | np.ndarray, n_total: int) -> np.ndarray:
    """Each group's share of n_total, proportional to its size, summing exactly to n_total."""
    sizes = np.asarray(group_sizes, dtype=np.int64)
    if n_total < 1 or n_total > int(sizes.sum()):
        raise ValueError(f"n_total must be in [1, N={int(sizes.sum())}], got {n_total}")
    return largest_remainder(sizes, n_total)


def select_in_splits(
    method: str | Callable[..., np.ndarray],
    features: np.ndarray,
    n_total: int,
    *,
    rng: np.random.Generator,
    n_splits: int = PAPER_N_SPLITS,
    images: np.ndarray | None = None,
    **hparams: Any,
) -> np.ndarray:
    """Run a selector (name in SELECTORS or a callable) group by group; sorted int64 indices."""
    from idc.select import SELECTORS  # the registry imports this module

    if isinstance(method, str):
        if method not in SELECTORS:
            raise ValueError(f"unknown selection method {method!r}; known: {sorted(SELECTORS)}")
        select = SELECTORS[method]
        name = method
    else:
        select, name = method, getattr(method, "__name__", "selector")
    if not isinstance(features, np.ndarray) or features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got {getattr(features, 'shape', None)}")
    n_candidates = features.shape[0]
    if images is not None and (not isinstance(images, np.ndarray) or images.shape[0] != n_candidates):
        raise ValueError(f"images must hold N={n_candidates} patches like the features")
    groups = split_groups(n_candidates, n_splits, rng)
    shares = split_shares([g.size for g in groups], n_total)
    group_seeds = rng.integers(0, 2**63 - 1, size=len(groups))
    selected: list[np.ndarray] = []
    started = time.perf_counter()
    for index, (group, share, seed) in enumerate(zip(groups, shares, group_seeds)):
        if share == 0:
            continue
        group = np.sort(group)  # candidates in their original order inside each group
        local = select(
            features[group],
            int(share),
            rng=np.random.default_rng(int(seed)),
            images=None if images is None else images[group],
            **hparams,
        )
        selected.append(group[local])
        elapsed = time.perf_counter() - started
        logger.info(
            "%s: group %d/%d selected %d of %d (%.1f s so far, eta %s)",
            name, index + 1, len(groups), share, group.size, elapsed,
            format_duration(elapsed / (index + 1) * (len(groups) - index - 1)),
        )
    merged = np.sort(np.concatenate(selected)).astype(np.int64)
    if merged.size != n_total or np.unique(merged).size != n_total:
        raise RuntimeError(f"{name}: split protocol produced {merged.size} indices, wanted {n_total}")
    return merged
