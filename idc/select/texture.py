"""Per-patch image statistics for DCSR: Sobel gradient score and a texture descriptor.

Gradient score (DCSR, ``texture_complexity_measurement.py``): grayscale patch, 3x3 Sobel
derivatives in x and y with OpenCV's default border (reflect-101, i.e. ``numpy.pad`` mode
"reflect"), score = mean over pixels of 0.5 |gx| + 0.5 |gy|. Grayscale is BT.601 luma
0.299 R + 0.587 G + 0.114 B on RGB patches, kept in float (not rounded to uint8).
(The DCSR code applies ``COLOR_RGB2GRAY`` to images that OpenCV read as BGR, which swaps the
R and B weights; here the weights go to the channels they were meant for.)

Texture descriptor (stands in for Deep TEN, whose DTD-trained weights are not available
offline). Deep TEN encodes a texture orderlessly (statistics pooled over all positions); this
descriptor does the same with hand-made statistics, 22 values per patch in three blocks:

* ``orientation`` (8): histogram of unsigned gradient orientation in [0, pi), 8 equal bins,
  weighted by gradient magnitude and normalised to sum 1 (directionality of the texture);
* ``lbp`` (10): histogram of rotation-invariant uniform local binary patterns (P = 8 neighbours
  at radius 1, labels 0..8 for uniform patterns by their number of ones, 9 for the rest),
  normalised to sum 1 (micro-structure: flat, edge, corner, spot, noise);
* ``contrast`` (4): log(1 + std of gray) and log(1 + mean gradient magnitude), each at full
  resolution and after 2x2 average pooling (contrast and coarseness across two scales).

All values are computed in float64 on gray levels in [0, 255], in chunks of patches so memory
stays bounded for any number of patches.
"""

from __future__ import annotations

import numpy as np

DESCRIPTOR_BLOCKS: dict[str, slice] = {"orientation": slice(0, 8), "lbp": slice(8, 18), "contrast": slice(18, 22)}
DESCRIPTOR_DIM = 22
_ORIENTATION_BINS = 8
_LBP_LABELS = 10
# Eight neighbours at radius 1, in circular order (row offset, column offset).
_LBP_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def to_gray(images: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB patches (N, h, w, 3) as float64 (N, h, w) in [0, 255]."""
    rgb = images.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def sobel_xy(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel derivatives (d/dx, d/dy) of (N, h, w) images with reflect-101 borders."""
    padded = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    h, w = gray.shape[1:]
    right, left = padded[:, :, 2:], padded[:, :, :w]
    horizontal = right - left  # (N, h + 2, w): column difference on every padded row
    gx = horizontal[:, 0:h] + 2.0 * horizontal[:, 1 : h + 1] + horizontal[:, 2 : h + 2]
    down, up = padded[:, 2:, :], padded[:, :h, :]
    vertical = down - up  # (N, h, w + 2)
    gy = vertical[:, :, 0:w] + 2.0 * vertical[:, :, 1 : w + 1] + vertical[:, :, 2 : w + 2]
    return gx, gy


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"images must have shape (N, h, w, 3), got {shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    if min(images.shape[1:3]) < 2:
        raise ValueError(f"patches must be at least 2x2 pixels, got {images.shape[1:3]}")


def sobel_scores(images: np.ndarray, *, chunk_size: int = 512) -> np.ndarray:
    """DCSR gradient score per patch: mean(0.5 |gx| + 0.5 |gy|), float64 (N,)."""
    _check_images(images)
    scores = np.empty(images.shape[0], dtype=np.float64)
    for start in range(0, images.shape[0], chunk_size):
        gx, gy = sobel_xy(to_gray(images[start : start + chunk_size]))
        scores[start : start + chunk_size] = (0.5 * np.abs(gx) + 0.5 * np.abs(gy)).mean(axis=(1, 2))
    return scores


def _orientation_histogram(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((angle * (_ORIENTATION_BINS / np.pi)).astype(np.int64), _ORIENTATION_BINS - 1)
    count = gx.shape[0]
    flat = (np.arange(count)[:, None] * _ORIENTATION_BINS + bins.reshape(count, -1)).ravel()
    hist = np.bincount(flat, weights=magnitude.ravel(), minlength=count * _ORIENTATION_BINS)
    hist = hist.reshape(count, _ORIENTATION_BINS)
    total = hist.sum(axis=1, keepdims=True)
    # A flat patch has no orientation: spread it evenly rather than dividing by zero.
    return np.where(total > 0, hist / np.where(total > 0, total, 1.0), 1.0 / _ORIENTATION_BINS)


def _lbp_histogram(gray: np.ndarray) -> np.ndarray:
    padded = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    h, w = gray.shape[1:]
    bits = np.stack(
        [padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] >= gray for dr, dc in _LBP_OFFSETS], axis=1
    )  # (N, 8, h, w)
    ones = bits.sum(axis=1)
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(axis=1)
    labels = np.where(transitions <= 2, ones, _LBP_LABELS - 1)
    count = gray.shape[0]
    flat = (np.arange(count)[:, None] * _LBP_LABELS + labels.reshape(count, -1)).ravel()
    hist = np.bincount(flat, minlength=count * _LBP_LABELS).reshape(count, _LBP_LABELS)
    return hist / float(h * w)


def _contrast(gray: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    full_std = gray.std(axis=(1, 2))
    full_grad = np.hypot(gx, gy).mean(axis=(1, 2))
    h2, w2 = gray.shape[1] // 2 * 2, gray.shape[2] // 2 * 2
    pooled = gray[:, :h2, :w2].reshape(gray.shape[0], h2 // 2, 2, w2 // 2, 2).mean(axis=(2, 4))
    if min(pooled.shape[1:]) >= 2:
        px, py = sobel_xy(pooled)
        half_grad = np.hypot(px, py).mean(axis=(1, 2))
    else:  # too small to pool: reuse the full-resolution value
        half_grad = full_grad
    half_std = pooled.std(axis=(1, 2))
    return np.log1p(np.stack([full_std, full_grad, half_std, half_grad], axis=1))


def texture_descriptors(images: np.ndarray, *, chunk_size: int = 512) -> np.ndarray:
    """Orderless texture descriptor (N, 22) float64 of uint8 RGB patches; see the module doc."""
    _check_images(images)
    out = np.empty((images.shape[0], DESCRIPTOR_DIM), dtype=np.float64)
    for start in range(0, images.shape[0], chunk_size):
        gray = to_gray(images[start : start + chunk_size])
        gx, gy = sobel_xy(gray)
        rows = slice(start, start + gray.shape[0])
        out[rows, DESCRIPTOR_BLOCKS["orientation"]] = _orientation_histogram(gx, gy)
        out[rows, DESCRIPTOR_BLOCKS["lbp"]] = _lbp_histogram(gray)
        out[rows, DESCRIPTOR_BLOCKS["contrast"]] = _contrast(gray, gx, gy)
    return out


def standardise_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """Z-score each column, then scale each block by 1/sqrt(width) so blocks weigh equally.

    Without this, k-means distances would be dominated by whichever block has the largest
    numeric range (the log contrast values) rather than by texture as a whole.
    """
    mean = descriptors.mean(axis=0)
    std = descriptors.std(axis=0)
    scaled = (descriptors - mean) / np.where(std > 0, std, 1.0)
    for block in DESCRIPTOR_BLOCKS.values():
        scaled[:, block] /= np.sqrt(block.stop - block.start)
    return scaled
