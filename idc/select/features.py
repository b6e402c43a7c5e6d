"""Feature spaces for Herding and K-Center: teacher features (default) or raw pixels.

The paper does not state the feature space of its Herding / K-Center baselines. The default here
is the SwinIR-light teacher's feature map (the tensor its up-sampler receives, the same features
IDC matches), cropped to the patch (SwinIR pads to its window size) and average-pooled over
positions: one C-dimensional vector per LR patch (C = 60 for SwinIR-light). Raw pixels in [0, 1]
are the alternative (h * w * 3 values per patch, float32).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from idc.device import resolve_device
from idc.progress import format_duration

logger = logging.getLogger(__name__)


def _check_lr(lr_uint8: np.ndarray) -> None:
    if not isinstance(lr_uint8, np.ndarray) or lr_uint8.ndim != 4 or lr_uint8.shape[-1] != 3:
        shape = getattr(lr_uint8, "shape", type(lr_uint8).__name__)
        raise ValueError(f"LR patches must have shape (N, h, w, 3), got {shape}")
    if lr_uint8.dtype != np.uint8:
        raise ValueError(f"LR patches must be uint8, got dtype {lr_uint8.dtype}")


def pixel_features(lr_uint8: np.ndarray) -> np.ndarray:
    """Flattened pixels in [0, 1]: float32 (N, h * w * 3)."""
    _check_lr(lr_uint8)
    flat = lr_uint8.reshape(lr_uint8.shape[0], -1)
    return flat.astype(np.float32) / np.float32(255.0)


def teacher_features(
    model: nn.Module,
    lr_uint8: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Global-average-pooled `model.features(x)` of LR patches, float32 (N, C).

    `x` is the batch as N x 3 x h x w float in [0, 1]. Feature maps larger than the input (a
    model padding to its window size) are cropped to the input's h x w before pooling, so the
    padding does not enter the average.
    """
    _check_lr(lr_uint8)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not hasattr(model, "features"):
        raise ValueError(f"model {type(model).__name__} has no features(x) method")
    torch_device = resolve_device(device)
    model = model.to(torch_device).eval()
    n_patches, h, w = lr_uint8.shape[:3]
    outputs: list[np.ndarray] = []
    n_batches = -(-n_patches // batch_size)
    log_every = max(1, n_batches // 20)
    started = time.perf_counter()
    with torch.no_grad():
        for batch_index, start in enumerate(range(0, n_patches, batch_size)):
            batch = torch.from_numpy(np.ascontiguousarray(lr_uint8[start : start + batch_size]))
            x = batch.to(torch_device).permute(0, 3, 1, 2).float().div_(255.0)
            fmap = model.features(x)
            if fmap.ndim != 4:
                raise ValueError(f"model.features returned shape {tuple(fmap.shape)}, expected (N, C, H, W)")
            if fmap.shape[-2] >= h and fmap.shape[-1] >= w:
                fmap = fmap[:, :, :h, :w]
            outputs.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())
            if (batch_index + 1) % log_every == 0 or batch_index + 1 == n_batches:
                done = min(start + batch_size, n_patches)
                elapsed = time.perf_counter() - started
                rate = done / max(elapsed, 1e-9)
                logger.info(
                    "teacher features: %d/%d patches (%.1f s, %.0f patches/s, eta %s)",
                    done, n_patches, elapsed, rate, format_duration((n_patches - done) / rate),
                )
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs, axis=0)
