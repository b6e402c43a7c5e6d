"""HR up-sampling of synthetic LR patches with the up-sampler teacher (paper 3.1, second stage)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(n, 3, h, w) float in [0,1] -> (n, h, w, 3) uint8, rounded half to even after clipping."""
    y = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def upsample_patches(lr: torch.Tensor, model: nn.Module, *, batch_size: int = 16,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Up-sample (n, 3, h, w) LR patches in [0,1] with `model` (eval, batched): (n, H, W, 3) uint8.

    The LR input is first quantised to uint8 as it will be stored, so HR patches are exactly what
    the teacher makes of the stored LR patches.
    """
    if lr.ndim != 4 or lr.shape[1] != 3:
        raise ValueError(f"synthetic LR patches must be (n, 3, h, w), got {tuple(lr.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device)
    model = model.to(device).eval()
    lr_q = torch.from_numpy(to_uint8(lr)).permute(0, 3, 1, 2).float() / 255.0
    out = []
    for start in range(0, lr_q.shape[0], batch_size):
        out.append(to_uint8(model(lr_q[start:start + batch_size].to(device))))
    logger.debug("up-sampled %d patches", lr_q.shape[0])
    return np.concatenate(out) if out else np.zeros((0, 0, 0, 3), np.uint8)
