"""One conformance test suite over every selector in SELECTORS (the common contract)."""

from __future__ import annotations

import numpy as np
import pytest

from idc.select import SELECTORS

N = 48


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(N, 6)).astype(np.float32)
    # Patches of varied texture: random contrast noise on a random flat level.
    level = rng.integers(20, 230, size=(N, 1, 1, 1))
    contrast = rng.uniform(0, 60, size=(N, 1, 1, 1))
    images = np.clip(level + contrast * rng.normal(size=(N, 10, 10, 3)), 0, 255).astype(np.uint8)
    return features, images


@pytest.fixture(params=sorted(SELECTORS))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def _select(name: str, features: np.ndarray, n: int, seed: int, images: np.ndarray) -> np.ndarray:
    # The torch-based selectors are pinned to the CPU so the suite behaves the same everywhere.
    hparams = {"device": "cpu"} if name in ("herding", "kcenter") else {}
    return SELECTORS[name](features, n, rng=np.random.default_rng(seed), images=images, **hparams)


@pytest.mark.parametrize("n", [1, 7, N - 1, N])
def test_returns_n_sorted_unique_int64_indices(name: str, n: int) -> None:
    features, images = _inputs()
    chosen = _select(name, features, n, 3, images)
    assert chosen.dtype == np.int64 and chosen.ndim == 1
    assert chosen.size == n
    assert np.array_equal(chosen, np.unique(chosen))  # sorted and unique
    assert chosen.min() >= 0 and chosen.max() < N
    if n == N:
        assert np.array_equal(chosen, np.arange(N))


def test_same_seed_same_result_and_inputs_untouched(name: str) -> None:
    features, images = _inputs(1)
    features_copy, images_copy = features.copy(), images.copy()
    first = _select(name, features, 12, 5, images)
    second = _select(name, features, 12, 5, images)
    assert np.array_equal(first, second)
    assert np.array_equal(features, features_copy) and features.dtype == features_copy.dtype
    assert np.array_equal(images, images_copy)


def test_seed_changes_randomised_selectors() -> None:
    features, images = _inputs(2)
    for name in ("random", "kcenter", "dcsr"):
        draws = {tuple(_select(name, features, 10, seed, images)) for seed in range(6)}
        assert len(draws) > 1, name


@pytest.mark.parametrize("n", [0, -1, N + 1])
def test_bad_n_is_a_clear_error(name: str, n: int) -> None:
    features, images = _inputs()
    with pytest.raises(ValueError, match=r"n must be in \[1, N=48\]"):
        _select(name, features, n, 0, images)


def test_bad_shapes_are_clear_errors(name: str) -> None:
    features, images = _inputs()
    with pytest.raises(ValueError, match="2-D"):
        _select(name, features[:, 0], 3, 0, images)
    with pytest.raises(ValueError, match="images"):
        _select(name, features, 3, 0, images[:-1])
    with pytest.raises(ValueError, match="images"):
        _select(name, features, 3, 0, images[..., :2])
    with pytest.raises(ValueError, match="rng"):
        SELECTORS[name](features, 3, rng=0, images=images)


def test_dcsr_needs_images() -> None:
    features, _ = _inputs()
    with pytest.raises(ValueError, match="images .* required"):
        SELECTORS["dcsr"](features, 3, rng=np.random.default_rng(0))


def test_registry_is_explicit() -> None:
    assert set(SELECTORS) == {"random", "herding", "kcenter", "dcsr"}
