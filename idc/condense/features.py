"""Random Local Fourier Features (paper section 3.2) and the alternatives of Table 7.

Pipeline on an extractor feature map f (N, c, h, w):
  batch-norm without affine -> conv with a filter bank W (C_out, c, k, k), padding k//2 ->
  p x p partition into N' = N (h/p)(w/p) local patches -> unfold into samples.

The RLFF bank: the identity I(C') with C' = c k^2 reshaped to E (C', c, k, k) (filter u picks one
input channel at one kernel offset), the FFT of E along its output-channel axis, F = [Re, -Im]
stacked to 2C' filters, and C_out of them sampled with a seeded generator.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from idc.condense.config import CondenseConfig


# ----------------------------------------------------------------------------------------------
# Filter banks, all (K, c, k, k) float32 before sampling.
# ----------------------------------------------------------------------------------------------
def identity_filters(c: int, k: int) -> torch.Tensor:
    """E: I(C') reshaped to (C', c, k, k), C' = c k^2 (x1: local features without Fourier)."""
    cp = c * k * k
    return torch.eye(cp, dtype=torch.float32).reshape(cp, c, k, k)


def fourier_filters(c: int, k: int) -> torch.Tensor:
    """F = [Re(FFT(E)), -Im(FFT(E))] with the FFT along E's output-channel axis: (2C', c, k, k)."""
    cp = c * k * k
    eye = torch.eye(cp, dtype=torch.complex128).reshape(cp, c, k, k)
    spectrum = torch.fft.fft(eye, dim=0)
    return torch.cat([spectrum.real, -spectrum.imag], dim=0).to(torch.float32)


def dct_filters(c: int, k: int) -> torch.Tensor:
    """Orthonormal DCT-II of E along its output-channel axis: (C', c, k, k) (x2)."""
    cp = c * k * k
    u = torch.arange(cp, dtype=torch.float64)[:, None]
    j = torch.arange(cp, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (j + 0.5) * u / cp) * math.sqrt(2.0 / cp)
    basis[0] /= math.sqrt(2.0)
    # DCT(E)[u] = sum_j basis[u, j] E[j] and E = I, so the bank is the DCT matrix itself.
    return basis.to(torch.float32).reshape(cp, c, k, k)


def _haar_1d(levels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Equivalent (low, high) 1-D filters of an undecimated (a trous) Haar cascade per level."""
    out = []
    low = np.array([1.0])
    for level in range(1, levels + 1):
        step = 2 ** (level - 1)
        h = np.zeros(step + 1)
        h[0], h[step] = 1 / math.sqrt(2), 1 / math.sqrt(2)
        g = np.zeros(step + 1)
        g[0], g[step] = 1 / math.sqrt(2), -1 / math.sqrt(2)
        high = np.convolve(low, g)
        low = np.convolve(low, h)
        out.append((low.copy(), high))
    return out


def wavelet_filters(c: int, k: int, levels: int) -> torch.Tensor:
    """Undecimated 2-D Haar bands per channel (x3, resolution preserving): (c (3L+1), c, k, k).

    Level j gives LH, HL, HH bands (support 2^j); the last level adds LL. Each band filters one
    input channel (depthwise) and sits in the k x k kernel starting at offset (k - 2^L) // 2.
    """
    if 2**levels > k:
        raise ValueError(f"condense config: wavelet_levels={levels} needs kernel >= {2 ** levels}, got {k}")
    bands_1d = _haar_1d(levels)
    kernels = []
    for level, (low, high) in enumerate(bands_1d, start=1):
        kernels += [np.outer(low, high), np.outer(high, low), np.outer(high, high)]
        if level == levels:
            kernels.append(np.outer(low, low))
    off = (k - 2**levels) // 2
    bank = torch.zeros(c * len(kernels), c, k, k, dtype=torch.float32)
    for ch in range(c):
        for b, ker in enumerate(kernels):
            s = ker.shape[0]
            bank[ch * len(kernels) + b, ch, off:off + s, off:off + s] = torch.from_numpy(ker).float()
    return bank


@functools.lru_cache(maxsize=2)
def filter_bank(transform: str, c: int, k: int, *, wavelet_levels: int = 2) -> torch.Tensor:
    """The full bank (cached: building the 5880-filter RLFF bank for c=60, k=7 takes seconds and
    is the same for every instance of a process). Callers must not modify it in place."""
    if transform == "rlff":
        return fourier_filters(c, k)
    if transform == "identity":
        return identity_filters(c, k)
    if transform == "dct":
        return dct_filters(c, k)
    if transform == "wavelet":
        return wavelet_filters(c, k, wavelet_levels)
    raise ValueError(f"condense config: feature_transform {transform!r} has no local filter bank")


def sample_filters(bank: torch.Tensor, c_out: int, generator: torch.Generator) -> torch.Tensor:
    """C_out filters drawn without replacement (all of them, in a random order, if fewer exist)."""
    order = torch.randperm(bank.shape[0], generator=generator)
    return bank[order[: min(c_out, bank.shape[0])]].contiguous()


# ----------------------------------------------------------------------------------------------
# Batch-norm and partition/unfold
# ----------------------------------------------------------------------------------------------
def channel_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over (N, h, w), as batch-norm in training mode."""
    var, mean = torch.var_mean(f, dim=(0, 2, 3), unbiased=False)
    return mean, var


def batch_normalise(f: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    return (f - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + eps)


def partition(f: torch.Tensor, p: int, *, unfold: bool) -> torch.Tensor:
    """(N, C, h, w) -> (N', s, D): N' = N (h/p)(w/p) local patches in (image, row, col) order.

    unfold=True: s = p*p samples of D = C (each position of a patch is a sample);
    unfold=False: s = 1 sample of D = p*p*C (the flattened patch).
    """
    n, ch, h, w = f.shape
    if h % p or w % p:
        raise ValueError(f"condense config: patch={p} must divide the feature map size {h}x{w}")
    x = f.reshape(n, ch, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)  # N, H/p, W/p, p, p, C
    if unfold:
        return x.reshape(n * (h // p) * (w // p), p * p, ch)
    return x.reshape(n * (h // p) * (w // p), 1, p * p * ch)


@dataclass
class LocalFeatures:
    """The configured local transform for one instance (filters fixed, real statistics fixed)."""

    cfg: CondenseConfig
    weight: torch.Tensor | None  # (C_out, c, k, k) or None when no local filter is applied
    real_mean: torch.Tensor | None = None
    real_var: torch.Tensor | None = None

    @classmethod
    def build(cls, cfg: CondenseConfig, in_channels: int, *, seed: int, device: torch.device) -> "LocalFeatures":
        weight = None
        if cfg.local_feature and cfg.feature_transform != "gaussian":
            gen = torch.Generator().manual_seed(seed)
            bank = filter_bank(cfg.feature_transform, in_channels, cfg.kernel, wavelet_levels=cfg.wavelet_levels)
            weight = sample_filters(bank, cfg.channels, gen).to(device)
        return cls(cfg=cfg, weight=weight)

    def fit_real(self, f_real: torch.Tensor) -> None:
        """Fix the real features' batch statistics (the real set never changes)."""
        self.real_mean, self.real_var = channel_stats(f_real)

    def transform(self, f: torch.Tensor, *, real: bool) -> torch.Tensor:
        """Batch-norm + filter bank: (N, c, h, w) -> (N, C_out, h, w) (or normalised f)."""
        cfg = self.cfg
        if cfg.bn_mode == "real" or (cfg.bn_mode == "batch" and real):
            if self.real_mean is None:
                raise RuntimeError("LocalFeatures.fit_real must be called before transforming")
            f = batch_normalise(f, self.real_mean, self.real_var, cfg.bn_eps)
        elif cfg.bn_mode == "batch":
            mean, var = channel_stats(f)
            f = batch_normalise(f, mean, var, cfg.bn_eps)
        if self.weight is not None:
            f = F.conv2d(f, self.weight, padding=cfg.kernel // 2)
        return f

    def samples(self, f: torch.Tensor, *, real: bool) -> torch.Tensor:
        """(N', s, D) samples grouped by local patch (see `partition`); (N, 1, c h w) for v1."""
        g = self.transform(f, real=real)
        if self.cfg.feature_transform == "gaussian":
            return g.reshape(g.shape[0], 1, -1)
        return partition(g, self.cfg.patch, unfold=self.cfg.unfold)
