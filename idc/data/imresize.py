"""MATLAB-compatible bicubic `imresize` (the resize that made every SR benchmark's LR images).

Conventions (MATLAB `imresize(img, scale, 'bicubic')`, also BasicSR's `matlab_functions.imresize`):

* Keys cubic kernel with a = -0.5, support 4 input pixels.
* When downscaling with ``antialiasing=True`` the kernel is widened by ``1/scale`` (and scaled by
  ``scale``), so it averages over the whole footprint of an output pixel.
* Output size per axis is ``ceil(in * scale)``; output pixel ``x`` (1-based) samples input position
  ``u = x / scale + 0.5 * (1 - 1 / scale)``.
* Border: symmetric extension that repeats the edge pixel (MATLAB's ``[1:n, n:-1:1]`` index map).
* Rows (H) are resized first, then columns (W) (MATLAB resizes the axis with the larger reduction
  first; with equal factors that is H).
* uint8 input: MATLAB keeps the class of the input after each axis, i.e. it rounds (half away
  from zero) and saturates to uint8 after the H pass and again after the W pass.

The float path computes in float64 and returns float64 without clipping, so it agrees with the
float32 BasicSR function to ~1e-7.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

__all__ = ["imresize", "imresize_uint8", "modcrop", "resize_weights", "output_size"]

KERNEL_WIDTH = 4.0  # support of the Keys cubic kernel, in input pixels


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def output_size(length: int, scale: float) -> int:
    """Output length of one axis: ``ceil(length * scale)`` as MATLAB computes it."""
    return int(math.ceil(length * scale))


def resize_weights(
    in_length: int, out_length: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices of a 1-D MATLAB bicubic resize.

    Returns ``(weights, indices)``, both of shape ``(out_length, P)``: output sample ``i`` is
    ``sum_k weights[i, k] * input[indices[i, k]]``. Indices already include the symmetric border
    extension (they are all within ``[0, in_length)``); all-zero kernel columns are removed as
    MATLAB's ``contributions`` does. Rows of ``weights`` sum to 1.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(
            f"imresize: axis lengths must be positive (in {in_length}, out {out_length})"
        )
    widen = scale < 1 and antialiasing
    kernel_width = KERNEL_WIDTH / scale if widen else KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based positions
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if widen else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric extension with edge repetition: position p (1-based) maps through [1..n, n..1].
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def _resize_axis(
    img: np.ndarray, axis: int, scale: float, out_length: int, antialiasing: bool
) -> np.ndarray:
    """Resize float64 ``img`` along ``axis`` (0 = H, 1 = W) with MATLAB bicubic weights.

    The 1-D resize is a sparse (out x in) matrix applied to the image flattened along the other
    axes: one pass in compiled code, ~3x faster than looping over the taps in numpy.
    """
    in_length = img.shape[axis]
    weights, indices = resize_weights(in_length, out_length, scale, antialiasing)
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    # Mirrored border taps can hit the same input pixel twice; csr_matrix sums such duplicates.
    matrix = scipy.sparse.csr_matrix(
        (weights.ravel(), (rows, indices.ravel())), shape=(out_length, in_length)
    )
    moved = np.moveaxis(img, axis, 0)
    flat = np.ascontiguousarray(moved).reshape(in_length, -1)
    out = np.asarray(matrix @ flat).reshape((out_length,) + moved.shape[1:])
    return np.moveaxis(out, 0, axis)


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"imresize: scale must be a positive finite number, got {scale!r}")
    return scale


# Largest output accepted (pixels): 16x a DIV2K image up-sampled x4 by far; `--scale 3000` on a
# photo would otherwise try to allocate terabytes before failing.
MAX_OUTPUT_PIXELS = 1 << 30


def _check_output_size(shape: tuple[int, ...], out_h: int, out_w: int) -> None:
    if out_h < 1 or out_w < 1:
        raise ValueError(f"imresize: {shape[0]}x{shape[1]} at this scale gives an empty {out_h}x{out_w} image")
    if out_h * out_w > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"imresize: {shape[0]}x{shape[1]} at this scale gives {out_h}x{out_w}, more than "
            f"{MAX_OUTPUT_PIXELS:,} pixels"
        )


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on a float image.

    ``img``: numpy array HxW or HxWxC, any real dtype (typically float in [0, 1]). Returns float64
    of shape ``(ceil(H*scale), ceil(W*scale)[, C])``, NOT clipped or rounded (bicubic overshoots).
    ``antialiasing`` widens the kernel when downscaling (MATLAB's default, True).
    """
    scale = _check_scale(scale)
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected HxW or HxWxC array, got shape {img.shape}")
    data = img.astype(np.float64, copy=False)
    out_h, out_w = output_size(data.shape[0], scale), output_size(data.shape[1], scale)
    _check_output_size(data.shape, out_h, out_w)
    data = _resize_axis(data, 0, scale, out_h, antialiasing)
    return _resize_axis(data, 1, scale, out_w, antialiasing)


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB double -> uint8: saturate to [0, 255], round half away from zero."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def imresize_uint8(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize`` on a uint8 image: uint8 out, rounded as MATLAB rounds.

    As in MATLAB, the intermediate image after the H pass is rounded to uint8 before the W pass.
    ``img``: uint8 HxW or HxWxC. Reproduces the benchmark ``LR_bicubic`` files bit for bit.
    """
    scale = _check_scale(scale)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"imresize_uint8: expected a uint8 image, got dtype {img.dtype}")
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize_uint8: expected HxW or HxWxC array, got shape {img.shape}")
    out_h, out_w = output_size(img.shape[0], scale), output_size(img.shape[1], scale)
    _check_output_size(img.shape, out_h, out_w)
    mid = _round_uint8(_resize_axis(img.astype(np.float64), 0, scale, out_h, antialiasing))
    return _round_uint8(_resize_axis(mid.astype(np.float64), 1, scale, out_w, antialiasing))


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale``, keeping the top-left corner (benchmark rule)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"modcrop: scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(
            f"modcrop: image of shape {img.shape[:2]} is smaller than the scale {scale}"
        )
    return img[:h, :w, ...]
