"""RLFF and the alternative local transforms (paper 3.2, Table 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from idc.condense.config import CondenseConfig
from idc.condense.features import (
    LocalFeatures,
    dct_filters,
    fourier_filters,
    identity_filters,
    partition,
    sample_filters,
    wavelet_filters,
)


def explicit_dft_bank(c: int, k: int) -> np.ndarray:
    """[Re, -Im] of the DFT matrix applied to the flattened (c, k, k) kernel positions, by formula."""
    cp = c * k * k
    u = np.arange(cp)[:, None]
    j = np.arange(cp)[None, :]
    ang = 2 * np.pi * u * j / cp
    return np.concatenate([np.cos(ang), np.sin(ang)]).reshape(2 * cp, c, k, k)


@pytest.mark.parametrize("c,k", [(2, 3), (3, 5), (1, 7)])
def test_rlff_bank_equals_explicit_dft(c: int, k: int) -> None:
    bank = fourier_filters(c, k).double().numpy()
    np.testing.assert_allclose(bank, explicit_dft_bank(c, k), atol=1e-6)


def test_identity_filter_is_a_shift_and_channel_pick() -> None:
    c, k = 2, 3
    e = identity_filters(c, k)
    x = torch.randn(1, c, 5, 5)
    y = F.conv2d(x, e, padding=k // 2)
    # output channel u = (channel u // k^2, offset u % k^2): y[u](i,j) = x[ch](i + dy - 1, j + dx - 1)
    u = 1 * k * k + 2 * k + 0  # channel 1, dy 2, dx 0
    assert torch.allclose(y[0, u, 1:4, 1:4], x[0, 1, 2:5, 0:3])


def test_rlff_conv_equals_dft_of_local_neighbourhood() -> None:
    """Conv with F = DFT over the local c*k*k neighbourhood vector (what Eq. 4/5 mean)."""
    c, k = 2, 3
    x = torch.randn(1, c, 6, 6, dtype=torch.float64)
    y = F.conv2d(x, fourier_filters(c, k).double(), padding=1)
    neigh = F.unfold(x, k, padding=1)[0, :, 2 * 6 + 3]  # (c k k) at pixel (2, 3)
    spec = np.fft.fft(neigh.numpy())
    np.testing.assert_allclose(y[0, :, 2, 3].numpy(), np.concatenate([spec.real, -spec.imag]), atol=1e-5)


def test_dct_bank_is_orthonormal() -> None:
    bank = dct_filters(2, 3).reshape(18, 18).double()
    assert torch.allclose(bank @ bank.T, torch.eye(18, dtype=torch.float64), atol=1e-5)


def test_wavelet_bank_preserves_resolution_and_energy() -> None:
    c, k = 2, 7
    bank = wavelet_filters(c, k, levels=2)
    assert bank.shape == (c * 7, c, k, k)
    # each band touches one input channel only (depthwise) and the Haar detail bands sum to zero
    assert torch.count_nonzero(bank[:7, 1]) == 0
    assert torch.allclose(bank[:6].sum(dim=(1, 2, 3)), torch.zeros(6), atol=1e-6)
    y = F.conv2d(torch.randn(1, c, 9, 9), bank, padding=k // 2)
    assert y.shape[-2:] == (9, 9)
    with pytest.raises(ValueError, match="wavelet_levels"):
        wavelet_filters(c, 3, levels=2)


def test_sampling_is_seeded_and_without_replacement() -> None:
    bank = fourier_filters(2, 3)
    a = sample_filters(bank, 10, torch.Generator().manual_seed(1))
    b = sample_filters(bank, 10, torch.Generator().manual_seed(1))
    c = sample_filters(bank, 10, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # without replacement: on a bank of distinct filters, 10 distinct ones come back
    # (the Fourier bank itself repeats rows: Re of u and C'-u coincide, -Im of u = 0 is zero)
    ident = sample_filters(identity_filters(2, 3), 10, torch.Generator().manual_seed(1))
    assert len({tuple(r.flatten().tolist()) for r in ident}) == 10
    assert sample_filters(bank, 1000, torch.Generator().manual_seed(1)).shape[0] == bank.shape[0]


def test_partition_order_and_unfold() -> None:
    f = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    s = partition(f, 2, unfold=True)
    assert s.shape == (2 * 2 * 2, 4, 3)
    # patch 1 = image 0, patch row 0, patch col 1; its first sample = pixel (0, 2), all channels
    assert torch.equal(s[1, 0], f[0, :, 0, 2])
    assert torch.equal(s[1, 3], f[0, :, 1, 3])
    flat = partition(f, 2, unfold=False)
    assert flat.shape == (8, 1, 12) and torch.equal(flat[1, 0], s[1].flatten())
    with pytest.raises(ValueError, match="patch=3"):
        partition(f, 3, unfold=True)


def test_local_features_batch_norm_modes() -> None:
    torch.manual_seed(0)
    real = torch.randn(4, 3, 8, 8) * 3 + 1
    syn = torch.randn(2, 3, 8, 8) * 5 - 2
    cfg = CondenseConfig(kernel=3, channels=16, patch=4)
    lf = LocalFeatures.build(cfg, 3, seed=0, device=torch.device("cpu"))
    lf.fit_real(real)
    assert lf.samples(real, real=True).shape == (4 * 4, 16, 16)
    # "batch": each set normalised by its own statistics -> the synthetic input's mean vanishes
    lf_id = LocalFeatures(cfg=CondenseConfig(local_feature=False), weight=None)
    lf_id.fit_real(real)
    out = lf_id.transform(syn, real=False)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    # "real": both by the fixed real statistics -> the synthetic shift stays visible
    lf_real = LocalFeatures(cfg=CondenseConfig(local_feature=False, bn_mode="real"), weight=None)
    lf_real.fit_real(real)
    assert lf_real.transform(syn, real=False).mean() < -0.5


def test_gaussian_variant_uses_whole_maps() -> None:
    cfg = CondenseConfig.from_dict({}, variant="v1")
    lf = LocalFeatures.build(cfg, 3, seed=0, device=torch.device("cpu"))
    real = torch.randn(5, 3, 8, 8)
    lf.fit_real(real)
    assert lf.weight is None
    assert lf.samples(real, real=True).shape == (5, 1, 3 * 64)
    assert math.isclose(float(lf.transform(real, real=True).var(unbiased=False)), 1.0, rel_tol=1e-3)
