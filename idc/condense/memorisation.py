"""Memorisation (privacy) measurement: how close is each synthetic patch to a real one?

For each synthetic LR patch, the PSNR to its nearest real LR patch of the same image (the maximum
over the real patches), computed on uint8 values in [0,255] as the stores hold them. High values
(e.g. > 35 dB) mean a near copy of a real patch.
"""

from __future__ import annotations

import numpy as np
import torch


def nearest_real_psnr(syn: np.ndarray, real: np.ndarray, *, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """syn (n,h,w,3), real (N,h,w,3) uint8 -> (max PSNR (n,), index of the nearest real patch (n,)).

    Identical patches give +inf."""
    if syn.shape[1:] != real.shape[1:]:
        raise ValueError(f"synthetic patches {syn.shape[1:]} and real patches {real.shape[1:]} differ in size")
    if len(real) == 0:
        raise ValueError("no real patches to compare with")
    s = torch.from_numpy(np.ascontiguousarray(syn)).reshape(len(syn), -1).double()
    r = torch.from_numpy(np.ascontiguousarray(real)).reshape(len(real), -1).double()
    d = s.shape[1]
    best = torch.full((len(syn),), float("inf"), dtype=torch.float64)
    arg = torch.zeros(len(syn), dtype=torch.long)
    for start in range(0, len(real), chunk):
        part = r[start:start + chunk]
        # direct differences (no |a|^2+|b|^2-2ab cancellation): an exact copy gives exactly 0
        mse = torch.cdist(s, part, compute_mode="donot_use_mm_for_euclid_dist").square() / d
        m, a = mse.min(1)
        better = m < best
        best = torch.where(better, m, best)
        arg = torch.where(better, a + start, arg)
    best = best.clamp(min=0)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(255.0**2 / best.numpy())
    return psnr, arg.numpy()


def _num(v: float) -> float | None:
    """JSON-safe number: an exact copy (infinite PSNR) is written as null."""
    return float(v) if np.isfinite(v) else None


def summarise(psnr: np.ndarray) -> dict[str, float | int | None]:
    """Mean/min/max over the finite PSNRs (dB) plus the count of exact copies (infinite PSNR)."""
    finite = psnr[np.isfinite(psnr)]
    return {"n": int(len(psnr)), "exact_copies": int(np.sum(~np.isfinite(psnr))),
            "mean_db": _num(np.mean(finite)) if len(finite) else None,
            "min_db": _num(np.min(finite)) if len(finite) else None,
            "max_db": _num(np.max(finite)) if len(finite) else None}
