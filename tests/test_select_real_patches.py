"""The selectors on real LR patches (Set5 HR crops, 64 x 64, as in the paper's LR patches)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from idc.data.images import list_images, read_image
from idc.select import pixel_features, select_dcsr, select_herding, select_kcenter, select_random
from idc.select.texture import sobel_scores
from tests.conftest import shared_path

PATCH = 32


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    crops = []
    for path in list_images(shared_path("data", "Set5", "HR")):
        image = read_image(path)
        h, w = image.shape[:2]
        for top in range(0, h - PATCH + 1, PATCH):
            for left in range(0, w - PATCH + 1, PATCH):
                crops.append(image[top : top + PATCH, left : left + PATCH])
    return np.stack(crops)


def test_dcsr_prefers_textured_real_patches(patches: np.ndarray) -> None:
    scores = sobel_scores(patches)
    none = np.zeros((len(patches), 0), dtype=np.float32)
    n = len(patches) // 10
    chosen = select_dcsr(none, n, rng=np.random.default_rng(0), images=patches)
    assert (scores[chosen] > scores.mean()).all()
    # Real photos have a long tail of flat regions (sky, skin): far fewer than half survive.
    assert (scores > scores.mean()).mean() < 0.5
    # And the draw covers the textures, not just the sharpest edges: below the top-n scores too.
    assert not set(chosen) <= set(np.argsort(-scores)[:n])


def test_feature_selectors_on_real_pixels(patches: np.ndarray) -> None:
    x = pixel_features(patches)
    n = len(patches) // 10
    mu = x.mean(axis=0)
    herd = select_herding(x, n, rng=np.random.default_rng(0), device="cpu")
    rand = select_random(x, n, rng=np.random.default_rng(0))
    assert np.linalg.norm(x[herd].mean(0) - mu) < np.linalg.norm(x[rand].mean(0) - mu)
    kc = select_kcenter(x, n, rng=np.random.default_rng(0), device="cpu")

    def covering_radius(idx: np.ndarray) -> float:
        return float(cdist(x, x[idx]).min(axis=1).max())

    assert covering_radius(kc) < covering_radius(rand)
