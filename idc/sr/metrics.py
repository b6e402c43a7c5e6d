"""PSNR and SSIM with the conventions of BasicSR (``basicsr/metrics/psnr_ssim.py``).

Inputs are uint8-rounded HWC images with values in [0, 255] (any integer or float dtype holding such
values); all arithmetic is float64. ``crop_border`` pixels are removed from each of the four edges
before anything else. With ``test_y_channel`` both images are reduced to the ITU-R BT.601 luma
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (not rounded), as super-resolution papers report.

Channel order: BasicSR reads images with OpenCV and therefore calls ``bgr2ycbcr``, which takes
channel 0 as *blue*. Our images are RGB, so by default channel 0 is taken as red
(``channel_order="rgb"``); this equals BasicSR applied to channel-reversed arrays. Feeding RGB arrays
to BasicSR unchanged (a common mistake) swaps the R and B weights; ``channel_order="bgr"`` reproduces
that reading. Like BasicSR, Y is computed from float32 [0, 1] inputs and stored as float32 (a float64 Y
moves SSIM by up to 1e-8, the size of the tolerance the reference values are quoted to); PSNR and
SSIM themselves are evaluated in float64.
"""

from __future__ import annotations

import math

import numpy as np

# BT.601 studio-swing luma weights for inputs scaled to [0, 1], output in [16, 235].
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0

# SSIM constants (Wang et al. 2004) for the data range 255.
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def rgb_to_y(img: np.ndarray, channel_order: str = "rgb") -> np.ndarray:
    """Luma of an HWC image with values in [0, 255], as float64 HW1 in [16, 235] (not rounded).

    The precision steps follow BasicSR's ``to_y_channel``: input scaled to [0, 1] in float32, weighted
    sum in float64, result quantised to float32 (as a fraction of 255) before returning.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    weights = _Y_WEIGHTS_RGB if channel_order == "rgb" else _Y_WEIGHTS_RGB[::-1]
    scaled = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    y = ((scaled @ weights + _Y_OFFSET) / 255.0).astype(np.float32) * np.float32(255.0)
    return y.astype(np.float64)[..., None]


def _prepare(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool, channel_order: str
) -> tuple[np.ndarray, np.ndarray]:
    """Shared front end: shape checks, border crop, optional Y conversion, float64 HWC."""
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {img2.shape}")
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an HWC or HW image, got shape {img.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(img.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"image of shape {img.shape} is too small for crop_border {crop_border}")
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and img.shape[2] == 3:
        return rgb_to_y(img, channel_order), rgb_to_y(img2, channel_order)
    return img.astype(np.float64), img2.astype(np.float64)


def calculate_psnr(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = False, *, channel_order: str = "rgb"
) -> float:
    """Peak signal-to-noise ratio in dB for peak 255; ``inf`` for identical images."""
    a, b = _prepare(img, img2, crop_border, test_y_channel, channel_order)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def gaussian_window(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is SSIM's 11x11 window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(channel: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Correlate an HW array with the separable window ``outer(g, g)``, keeping the valid region."""
    k = g.size
    rows = np.lib.stride_tricks.sliding_window_view(channel, k, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ g


def _ssim_single_channel(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    )
    return float(ssim_map.mean())


def calculate_ssim(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = False, *, channel_order: str = "rgb"
) -> float:
    """Structural similarity (11x11 Gaussian window, sigma 1.5, valid region), averaged over channels."""
    a, b = _prepare(img, img2, crop_border, test_y_channel, channel_order)
    if min(a.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(f"image of shape {a.shape} is smaller than the {_SSIM_WINDOW}x{_SSIM_WINDOW} SSIM window")
    g = gaussian_window()
    return float(np.mean([_ssim_single_channel(a[..., c], b[..., c], g) for c in range(a.shape[2])]))
