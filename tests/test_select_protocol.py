"""The paper's 20-group protocol: counts, rounding, per-group shares, alignment."""

from __future__ import annotations

import numpy as np
import pytest

from idc.select import select_in_splits, split_shares
from idc.select.protocol import split_groups

PAPER_N = 120_765  # DIV2K, HR 256 / step 128 crops (the paper's count)


def test_paper_shares_sum_exactly() -> None:
    groups = split_groups(PAPER_N, 20, np.random.default_rng(0))
    sizes = np.array([g.size for g in groups])
    assert sizes.sum() == PAPER_N and sizes.max() - sizes.min() <= 1
    shares = split_shares(sizes, 12_076)
    assert shares.sum() == 12_076
    exact = 12_076 * sizes / PAPER_N
    assert (np.abs(shares - exact) < 1).all()
    assert set(shares.tolist()) <= {603, 604}


def test_select_in_splits_paper_scale_counts() -> None:
    features = np.zeros((PAPER_N, 0), dtype=np.float32)
    chosen = select_in_splits("random", features, 12_076, rng=np.random.default_rng(3))
    assert chosen.size == 12_076 and chosen.dtype == np.int64
    assert np.array_equal(chosen, np.unique(chosen))
    # Recreate the groups (the permutation is the generator's first draw): shares per group.
    groups = split_groups(PAPER_N, 20, np.random.default_rng(3))
    shares = split_shares([g.size for g in groups], 12_076)
    per_group = [np.isin(g, chosen).sum() for g in groups]
    assert per_group == shares.tolist()


def test_select_in_splits_passes_aligned_group_data() -> None:
    n = 103
    features = np.arange(n, dtype=np.float64)[:, None]
    images = np.zeros((n, 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    calls: list[int] = []

    def first_k(feats: np.ndarray, k: int, *, rng: np.random.Generator, images: np.ndarray, tag: str) -> np.ndarray:
        assert tag == "x"  # hyper-parameters are forwarded
        assert np.array_equal(feats[:, 0].astype(np.uint8), images[:, 0, 0, 0])
        assert np.all(np.diff(feats[:, 0]) > 0)  # original order inside the group
        calls.append(k)
        return np.arange(k, dtype=np.int64)

    chosen = select_in_splits(first_k, features, 21, rng=np.random.default_rng(0), n_splits=4,
                              images=images, tag="x")
    assert sum(calls) == 21 and len(calls) == 4 and chosen.size == 21


def test_select_in_splits_skips_groups_with_zero_share() -> None:
    features = np.random.default_rng(0).normal(size=(30, 3))
    chosen = select_in_splits("herding", features, 2, rng=np.random.default_rng(1), n_splits=10, device="cpu")
    assert chosen.size == 2


def test_select_in_splits_errors() -> None:
    features = np.zeros((50, 2))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown selection method"):
        select_in_splits("coreset", features, 5, rng=rng)
    with pytest.raises(ValueError, match="n_total"):
        select_in_splits("random", features, 51, rng=rng)
    with pytest.raises(ValueError, match="n_splits"):
        select_in_splits("random", features, 5, rng=rng, n_splits=0)
    with pytest.raises(ValueError, match="images"):
        select_in_splits("dcsr", features, 5, rng=rng, images=np.zeros((49, 4, 4, 3), np.uint8))


def test_same_seed_same_split_selection() -> None:
    features = np.random.default_rng(5).normal(size=(400, 4)).astype(np.float32)
    runs = [select_in_splits("kcenter", features, 40, rng=np.random.default_rng(2), device="cpu") for _ in range(2)]
    assert np.array_equal(*runs)
