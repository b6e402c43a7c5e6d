"""PSNR/SSIM against values computed by BasicSR itself (../shared/fixtures/metrics.*)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from idc.sr.metrics import calculate_psnr, calculate_ssim, gaussian_window, rgb_to_y

PSNR_TOL = 1e-6
SSIM_TOL = 1e-8
_CALL = re.compile(r"calculate_(psnr|ssim)\((\S+), (\S+), crop_border=(\d+), input_order=HWC, test_y_channel=(\w+)\)")


@pytest.fixture
def metric_fixture(fixtures_dir):
    from safetensors.numpy import load_file

    tensors = load_file(str(fixtures_dir / "metrics.safetensors"))
    info = json.loads((fixtures_dir / "metrics.json").read_text())
    return tensors, info


def _cases(results: dict) -> list[tuple[str, int, bool, float]]:
    cases = []
    for call, value in results.items():
        match = _CALL.fullmatch(call)
        assert match, call
        metric, _, _, crop, y = match.groups()
        cases.append((metric, int(crop), y == "True", float(value)))
    return cases


def test_bgr_reading_equals_basicsr(metric_fixture):
    tensors, info = metric_fixture
    img1, img2 = tensors["img1_uint8_HWC"], tensors["img2_uint8_HWC"]
    cases = _cases(info["psnr_ssim_results"])
    assert len(cases) == 8
    for metric, crop, y, expected in cases:
        fn = calculate_psnr if metric == "psnr" else calculate_ssim
        got = fn(img1, img2, crop, y, channel_order="bgr")
        assert abs(got - expected) < (PSNR_TOL if metric == "psnr" else SSIM_TOL), (metric, crop, y)


def test_rgb_reading_equals_basicsr_on_reversed_channels(metric_fixture):
    tensors, info = metric_fixture
    img1, img2 = tensors["img1_uint8_HWC"], tensors["img2_uint8_HWC"]
    results = info["y_channel_with_rgb_interpretation"]
    results = {k.replace("[..., ::-1]", ""): v for k, v in results.items()}
    cases = _cases(results)
    assert len(cases) == 4
    for metric, crop, y, expected in cases:
        fn = calculate_psnr if metric == "psnr" else calculate_ssim
        got = fn(img1, img2, crop, y)  # default: channel 0 is red
        assert abs(got - expected) < (PSNR_TOL if metric == "psnr" else SSIM_TOL), (metric, crop, y)


def test_tensor_copy_of_values_matches(metric_fixture):
    tensors, info = metric_fixture
    img1, img2 = tensors["img1_uint8_HWC"], tensors["img2_uint8_HWC"]
    order = info["psnr_ssim_results_order_in_tensor_metric_values_float64"]
    for call, expected in zip(order, tensors["metric_values_float64"]):
        metric, _, _, crop, y = _CALL.fullmatch(call).groups()
        fn = calculate_psnr if metric == "psnr" else calculate_ssim
        assert abs(fn(img1, img2, int(crop), y == "True", channel_order="bgr") - expected) < 1e-6


def test_y_channel_and_window_match_basicsr_intermediates(metric_fixture):
    tensors, _ = metric_fixture
    for name in ("img1", "img2"):
        y = rgb_to_y(tensors[f"{name}_uint8_HWC"], "bgr")
        np.testing.assert_array_equal(y, tensors[f"{name}_y_float32_HW1"].astype(np.float64))
    window = np.outer(gaussian_window(), gaussian_window())
    np.testing.assert_allclose(window, tensors["ssim_window_11x11_float64"], rtol=0, atol=1e-15)


def test_identical_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert calculate_psnr(img, img, 0) == math.inf
    assert calculate_psnr(img, img, 4, True) == math.inf
    assert calculate_ssim(img, img, 0) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_known_error():
    # A constant error of 1 grey level: MSE 1 -> 20 log10(255).
    img = np.full((20, 20, 3), 100, np.uint8)
    assert calculate_psnr(img, img + 1, 0) == pytest.approx(20 * math.log10(255), abs=1e-12)
    # Only the crop region counts: errors on the border are ignored.
    img2 = img.copy()
    img2[:2] = 0
    assert calculate_psnr(img, img2, 2) == math.inf


def test_ssim_matches_scikit_image_on_rgb():
    # An independent implementation with the same settings: Gaussian weights, sigma 1.5, no
    # covariance bias correction, data range 255. skimage averages over the same valid region.
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).round().astype(np.uint8)
    ours = calculate_ssim(a, b, 0)
    _, full = structural_similarity(
        a.astype(np.float64), b.astype(np.float64), channel_axis=2, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, full=True,
    )
    reference = full[5:-5, 5:-5].mean()
    assert ours == pytest.approx(reference, abs=1e-10)


def test_bad_input():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        calculate_psnr(a, a[:10], 0)
    with pytest.raises(ValueError, match="crop_border"):
        calculate_psnr(a, a, -1)
    with pytest.raises(ValueError, match="too small"):
        calculate_psnr(a, a, 10)
    with pytest.raises(ValueError, match="channel_order"):
        calculate_psnr(a, a, 0, True, channel_order="yuv")
