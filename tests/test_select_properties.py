"""Property tests of the selectors against their definitions, on random and synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from idc.select import select_herding, select_kcenter, select_random
from idc.select.dcsr import cluster_descriptors, cluster_quotas, gradient_threshold, select_dcsr
from idc.select.texture import sobel_scores, texture_descriptors

SEEDS = range(5)


def _gaussian_features(seed: int, n: int = 300, d: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Anisotropic, shifted: the mean is not at the origin and axes have different spreads.
    return (rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + 2.0).astype(np.float32)


# ----- Herding -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_herding_mean_is_closer_to_full_mean_than_random(seed: int) -> None:
    x = _gaussian_features(seed)
    mu = x.mean(axis=0)
    herd = select_herding(x, 30, rng=np.random.default_rng(seed), device="cpu")
    rand = select_random(x, 30, rng=np.random.default_rng(seed))
    assert np.linalg.norm(x[herd].mean(0) - mu) < np.linalg.norm(x[rand].mean(0) - mu)


def _herding_by_definition(x: np.ndarray, n: int, rule: str) -> list[int]:
    """Straight from the definition: score every unselected point by ||(S + x) - (i+1) mu||."""
    x = x.astype(np.float64)
    mu = x.mean(axis=0)
    chosen: list[int] = []
    for step in range(n):
        rest = [i for i in range(len(x)) if i not in chosen]
        total = x[chosen].sum(axis=0) if chosen else np.zeros_like(mu)
        gaps = [np.linalg.norm(total + x[i] - (step + 1) * mu) for i in rest]
        pick = int(np.argmin(gaps)) if rule == "classic" else int(np.argmax(gaps))
        chosen.append(rest[pick])
    return sorted(chosen)


@pytest.mark.parametrize("rule", ["classic", "deepcore"])
def test_herding_matches_its_definition(rule: str) -> None:
    x = _gaussian_features(7, n=60, d=4)
    got = select_herding(x, 12, rng=np.random.default_rng(0), rule=rule, device="cpu")
    assert got.tolist() == _herding_by_definition(x, 12, rule)


def test_herding_rules_differ_and_unknown_rule_fails() -> None:
    x = _gaussian_features(3, n=80)
    classic = select_herding(x, 10, rng=np.random.default_rng(0), device="cpu")
    deepcore = select_herding(x, 10, rng=np.random.default_rng(0), rule="deepcore", device="cpu")
    assert not np.array_equal(classic, deepcore)
    with pytest.raises(ValueError, match="rule"):
        select_herding(x, 10, rng=np.random.default_rng(0), rule="greedy")


# ----- K-Center Greedy -----------------------------------------------------------------------

def _covering_radius(x: np.ndarray, centres: np.ndarray) -> float:
    return float(cdist(x, x[centres]).min(axis=1).max())


@pytest.mark.parametrize("seed", SEEDS)
def test_kcenter_covering_radius_is_smaller_than_random(seed: int) -> None:
    x = _gaussian_features(seed)
    kc = select_kcenter(x, 30, rng=np.random.default_rng(seed), device="cpu")
    rand = select_random(x, 30, rng=np.random.default_rng(seed))
    assert _covering_radius(x, kc) < _covering_radius(x, rand)


@pytest.mark.parametrize("seed", SEEDS)
def test_kcenter_greedy_invariant(seed: int) -> None:
    """Each greedy centre was the farthest point when chosen, so no two centres are closer
    than the final covering radius."""
    x = _gaussian_features(seed, n=200, d=3)
    kc = select_kcenter(x, 25, rng=np.random.default_rng(seed), device="cpu")
    pairwise = cdist(x[kc], x[kc])
    np.fill_diagonal(pairwise, np.inf)
    assert pairwise.min() >= _covering_radius(x, kc) - 1e-9


def test_kcenter_matches_full_distance_matrix_and_chunking() -> None:
    x = _gaussian_features(11, n=120, d=5)
    first = int(np.random.default_rng(4).integers(120))
    # Reference: greedy on the full distance matrix, from the same first centre.
    dist = cdist(x.astype(np.float64), x.astype(np.float64))
    chosen = [first]
    for _ in range(19):
        nearest = dist[:, chosen].min(axis=1)
        nearest[chosen] = -1
        chosen.append(int(np.argmax(nearest)))
    for chunk in (5, 7 * 5, 2**24):  # one row per chunk, uneven chunks, one chunk
        got = select_kcenter(x, 20, rng=np.random.default_rng(4), device="cpu", chunk_elements=chunk)
        assert got.tolist() == sorted(chosen)


def test_kcenter_handles_duplicate_points() -> None:
    x = np.repeat(_gaussian_features(0, n=5, d=2), 4, axis=0)  # 20 points, 5 distinct
    got = select_kcenter(x, 12, rng=np.random.default_rng(0), device="cpu")
    assert np.unique(got).size == 12
    assert len({tuple(row) for row in x[got]}) == 5  # every distinct point is covered first


# ----- DCSR ----------------------------------------------------------------------------------

def _textured_patches(seed: int, n: int = 360, size: int = 16) -> np.ndarray:
    """Flat, striped (several orientations and frequencies) and noisy patches."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    patches = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        kind = i % 3
        base = rng.uniform(40, 200)
        if kind == 0:
            gray = base + rng.normal(0, 2, (size, size))
        elif kind == 1:
            angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 1.2)
            gray = base + rng.uniform(20, 60) * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        else:
            gray = base + rng.uniform(10, 50) * rng.normal(size=(size, size))
        tint = rng.uniform(0.8, 1.2, size=3)
        patches[i] = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return patches


def test_sobel_score_matches_scipy_reference() -> None:
    images = _textured_patches(0, n=20)
    gray = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    # scipy's "mirror" border is OpenCV's BORDER_REFLECT_101, DCSR's (cv2.Sobel) default.
    expected = [
        np.mean(0.5 * np.abs(ndimage.sobel(g, axis=1, mode="mirror"))
                + 0.5 * np.abs(ndimage.sobel(g, axis=0, mode="mirror")))
        for g in gray
    ]
    np.testing.assert_allclose(sobel_scores(images, chunk_size=7), expected, rtol=1e-12)


def test_texture_descriptor_on_known_patterns() -> None:
    size = 12
    xx = np.tile(np.arange(size), (size, 1)).astype(np.float64)
    flat = np.full((size, size), 100.0)
    vertical_stripes = 100 + 50 * np.sin(xx)  # varies along x: gradient direction 0
    checker = 100 + 50 * ((np.indices((size, size)).sum(axis=0) % 2) * 2 - 1)
    gray = np.stack([flat, vertical_stripes, vertical_stripes.T, checker])
    images = np.repeat(gray[..., None], 3, axis=-1).astype(np.uint8)
    d = texture_descriptors(images)
    np.testing.assert_allclose(d[:, :8].sum(axis=1), 1.0)  # orientation histograms
    np.testing.assert_allclose(d[:, 8:18].sum(axis=1), 1.0)  # LBP histograms
    np.testing.assert_allclose(d[0, :8], 1 / 8)  # flat: no orientation, spread evenly
    assert d[0, 8 + 8] == 1.0  # flat: every neighbour >= centre, uniform label 8
    assert d[1, 0] > 0.99  # vertical stripes: horizontal gradient, bin 0
    assert d[2, 4] > 0.99  # horizontal stripes: vertical gradient, bin 4 (pi/2)
    # Checkerboard: a bright centre sees alternating darker / equal neighbours (non-uniform,
    # label 9); a dark centre sees none darker (label 8). Half the pixels are each.
    assert d[3, 8 + 9] == 0.5 and d[3, 8 + 8] == 0.5
    assert d[0, 18] == 0.0 and d[3, 18] > d[1, 18] > 0  # log(1 + std): contrast ordering


@pytest.mark.parametrize("threshold", ["mean", "median"])
def test_dcsr_keeps_only_patches_above_threshold(threshold: str) -> None:
    images = _textured_patches(1)
    features = np.zeros((len(images), 0), dtype=np.float32)
    scores = sobel_scores(images)
    cut = gradient_threshold(scores, threshold)
    chosen = select_dcsr(features, 60, rng=np.random.default_rng(0), images=images, threshold=threshold)
    assert chosen.size == 60
    assert (scores[chosen] > cut).all()
    if threshold == "median":  # DCSR code: the lower median, about half survive
        assert (scores > cut).sum() == len(images) - len(images) // 2


@pytest.mark.parametrize("allocation", ["equal", "proportional"])
def test_dcsr_draws_from_every_cluster(allocation: str) -> None:
    images = _textured_patches(2)
    features = np.zeros((len(images), 0), dtype=np.float32)
    n = 60
    chosen = select_dcsr(features, n, rng=np.random.default_rng(9), images=images, allocation=allocation)
    # Recompute the clustering: k-means draws its seed first from the same generator.
    scores = sobel_scores(images)
    survivors = np.flatnonzero(scores > scores.mean())
    labels = cluster_descriptors(texture_descriptors(images[survivors]), 15, n_init=10,
                                 rng=np.random.default_rng(9))
    assert labels.max() + 1 == 15
    position = {index: k for k, index in enumerate(survivors)}
    counts = np.bincount([labels[position[i]] for i in chosen], minlength=15)
    sizes = np.bincount(labels, minlength=15)
    assert (counts > 0).all() and counts.sum() == n and (counts <= sizes).all()
    if allocation == "equal":
        # Clusters not exhausted got equal shares (up to one for the remainder).
        open_counts = counts[counts < sizes]
        assert open_counts.max() - open_counts.min() <= 1
        assert (counts[counts == sizes] <= open_counts.max()).all()


def test_cluster_quotas_redistribute_shortfall() -> None:
    sizes = np.array([1, 2, 50, 50, 3])
    quotas = cluster_quotas(sizes, 40, allocation="equal", rng=np.random.default_rng(0))
    assert quotas.tolist()[:2] == [1, 2] and quotas[4] == 3 and quotas.sum() == 40
    assert abs(int(quotas[2]) - int(quotas[3])) <= 1
    proportional = cluster_quotas(sizes, 53, allocation="proportional", rng=np.random.default_rng(0))
    assert proportional.sum() == 53 and (proportional <= sizes).all()
    with pytest.raises(ValueError, match="cannot draw"):
        cluster_quotas(sizes, 107, allocation="equal", rng=np.random.default_rng(0))


def test_dcsr_tops_up_from_highest_scoring_dropped(caplog: pytest.LogCaptureFixture) -> None:
    images = _textured_patches(3, n=60)
    features = np.zeros((60, 0), dtype=np.float32)
    scores = sobel_scores(images)
    cut = float(np.sort(scores)[-5])  # exactly 4 patches score above it
    with caplog.at_level("WARNING", logger="idc.select.dcsr"):
        chosen = select_dcsr(features, 10, rng=np.random.default_rng(0), images=images, threshold=cut)
    assert "topping up" in caplog.text
    assert chosen.tolist() == sorted(np.argsort(-scores, kind="stable")[:10].tolist())


def test_dcsr_bad_hparams() -> None:
    images = _textured_patches(0, n=30)
    features = np.zeros((30, 0), dtype=np.float32)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="threshold"):
        select_dcsr(features, 5, rng=rng, images=images, threshold="average")
    with pytest.raises(ValueError, match="allocation"):
        select_dcsr(features, 5, rng=rng, images=images, allocation="even")
