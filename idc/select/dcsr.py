"""DCSR (Ding et al., 2023): gradient pruning, then texture clustering and per-cluster draws.

1. Score every LR patch by its Sobel gradient (`idc.select.texture.sobel_scores`) and keep the
   patches scoring strictly above a threshold: ``"mean"`` (the IDC paper, C.2: patches below
   the average are removed), ``"median"`` (the DCSR code: the lower median
   ``sorted(scores)[floor(N / 2) - 1]``, so about half survive) or a number (absolute score).
2. Describe the survivors with the texture descriptor of `idc.select.texture` (this replaces
   the Deep TEN features of the paper, whose weights are not available offline), standardise
   it, and cluster with k-means (``n_clusters`` = 15, k-means++ init, ``n_init`` = 10 restarts,
   the seed drawn from `rng`). With fewer distinct survivors than clusters, k shrinks to fit.
3. Draw uniformly without replacement inside each cluster to reach n:
   ``allocation="equal"`` (the DCSR code) gives every cluster the same share; a cluster too
   small to fill its share gives all it has and the shortfall is spread evenly over the others
   (repeatedly, until n is reached); remainders of the division go to clusters in random order.
   ``allocation="proportional"`` (the paper's wording: 80% of each cluster removed) gives shares
   proportional to cluster sizes (largest remainder, ties to the lower cluster label).

When fewer than n patches survive the threshold, no clustering is needed: all survivors are
kept and the rest is topped up with the highest-scoring dropped patches (ties to the lower
index); a warning is logged with the counts.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from idc.counting import largest_remainder
from idc.select.texture import sobel_scores, standardise_descriptors, texture_descriptors
from idc.select.validation import as_sorted_indices, check_selection_args

logger = logging.getLogger(__name__)

ALLOCATIONS = ("equal", "proportional")


def gradient_threshold(scores: np.ndarray, threshold: str | float) -> float:
    """The score value that a patch must exceed to survive (see the module docstring)."""
    if isinstance(threshold, str):
        if threshold == "mean":
            return float(scores.mean())
        if threshold == "median":
            return float(np.sort(scores)[max(scores.size // 2 - 1, 0)])
        raise ValueError(f"dcsr: threshold must be 'mean', 'median' or a number, got {threshold!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise ValueError(f"dcsr: threshold must be 'mean', 'median' or a number, got {threshold!r}")
    return float(threshold)


def cluster_descriptors(
    descriptors: np.ndarray, n_clusters: int, *, n_init: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means labels (int64, 0..k-1) of standardised descriptors; k <= distinct rows."""
    distinct = np.unique(descriptors, axis=0).shape[0]
    k = min(n_clusters, distinct)
    if k < n_clusters:
        logger.info("dcsr: only %d distinct descriptors, clustering into %d groups", distinct, k)
    if k <= 1:
        return np.zeros(descriptors.shape[0], dtype=np.int64)
    kmeans = KMeans(
        n_clusters=k,
        init="k-means++",
        n_init=n_init,
        random_state=int(rng.integers(2**31 - 1)),
    )
    # One thread: a group's k-means is small (a few thousand x 22), and OpenMP threads on a
    # busy machine spin-wait: measured 0.27 s with one thread vs 8-10 s with two on 2 shared
    # cores. It also keeps the result independent of the machine's core count.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # Near-duplicate descriptors can leave fewer than k distinct centres; that is harmless.
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = kmeans.fit_predict(standardise_descriptors(descriptors))
    # Relabel to 0..m-1 in case k-means left a cluster empty.
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def cluster_quotas(
    sizes: np.ndarray, n: int, *, allocation: str, rng: np.random.Generator
) -> np.ndarray:
    """How many to draw from each cluster: sums to n, never exceeds a cluster's size."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if n > int(sizes.sum()):
        raise ValueError(f"dcsr: cannot draw {n} from clusters holding {int(sizes.sum())}")
    if allocation == "proportional":
        return largest_remainder(sizes, n)
    if allocation != "equal":
        raise ValueError(f"dcsr: allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    quotas = np.zeros_like(sizes)
    remaining = n
    while remaining > 0:
        open_clusters = np.flatnonzero(quotas < sizes)
        share, extra = divmod(remaining, open_clusters.size)
        wanted = np.full(open_clusters.size, share, dtype=np.int64)
        wanted[rng.permutation(open_clusters.size)[:extra]] += 1
        granted = np.minimum(wanted, sizes[open_clusters] - quotas[open_clusters])
        quotas[open_clusters] += granted
        remaining -= int(granted.sum())
    return quotas


def select_dcsr(
    features: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    images: np.ndarray | None = None,
    threshold: str | float = "mean",
    n_clusters: int = 15,
    n_init: int = 10,
    allocation: str = "equal",
    chunk_size: int = 512,
) -> np.ndarray:
    """DCSR selection of n of the LR patches `images` (N, h, w, 3) uint8; `features` fixes N."""
    n_candidates = check_selection_args(
        features, n, rng, method="dcsr", images=images, need_images=True
    )
    if allocation not in ALLOCATIONS:
        raise ValueError(f"dcsr: allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if n_clusters < 1 or n_init < 1:
        raise ValueError(f"dcsr: n_clusters and n_init must be >= 1, got {n_clusters}, {n_init}")
    assert images is not None  # checked above; narrows the type
    scores = sobel_scores(images, chunk_size=chunk_size)
    cut = gradient_threshold(scores, threshold)
    survivors = np.flatnonzero(scores > cut)
    if survivors.size <= n:
        dropped = np.flatnonzero(scores <= cut)
        # Stable sort on the negated score: highest first, ties to the lower index.
        top_up = dropped[np.argsort(-scores[dropped], kind="stable")[: n - survivors.size]]
        if top_up.size:
            logger.warning(
                "dcsr: only %d of %d patches score above the %s threshold (%.4g) but %d are "
                "wanted; topping up with the %d highest-scoring dropped patches",
                survivors.size, n_candidates, threshold, cut, n, top_up.size,
            )
        return as_sorted_indices(np.concatenate([survivors, top_up]))
    labels = cluster_descriptors(
        texture_descriptors(images[survivors], chunk_size=chunk_size),
        n_clusters,
        n_init=n_init,
        rng=rng,
    )
    sizes = np.bincount(labels)
    quotas = cluster_quotas(sizes, n, allocation=allocation, rng=rng)
    picked = [
        rng.choice(np.flatnonzero(labels == cluster), size=int(quota), replace=False)
        for cluster, quota in enumerate(quotas)
        if quota > 0
    ]
    return as_sorted_indices(survivors[np.concatenate(picked)])
