"""Characteristic-function distribution loss and the multi-level losses (paper 2, 3.3)."""

from __future__ import annotations

import torch

from idc.condense.losses import (
    cf_loss,
    instance_and_group_losses,
    instance_and_group_losses_looped,
    normalise_samples,
    pair_loss,
    pair_loss_looped,
    real_cf_stats,
    sample_frequencies,
)


def _t(dim: int, num: int = 256, seed: int = 0) -> torch.Tensor:
    return sample_frequencies(num, dim, std=1.0, generator=torch.Generator().manual_seed(seed),
                              device=torch.device("cpu"), dtype=torch.float64)


def test_identical_sets_give_near_zero_and_shift_grows() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g, dtype=torch.float64)
    t = _t(8)
    same = cf_loss(x, x.clone(), t, 0.2, 0.8)
    assert same < 1e-5  # only the phase floor sqrt(0.8e-12) remains
    losses = [float(cf_loss(x, x + torch.tensor([s] + [0.0] * 7, dtype=torch.float64), t, 0.2, 0.8))
              for s in (0.25, 0.5, 1.0, 2.0)]
    assert losses[0] > 1e-3
    assert all(a < b for a, b in zip(losses, losses[1:])), losses


def test_known_value_for_point_masses() -> None:
    """Two point masses a, b: |Phi| = 1 both, phase term 2(1 - cos(t.(a-b)))."""
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    t = _t(2, 64)
    expected = torch.sqrt(0.8 * 2 * (1 - torch.cos(t @ (a - b).T).flatten()).clamp(min=1e-12)).mean()
    assert torch.allclose(cf_loss(a, b, t, 0.2, 0.8), expected)


def _grouped_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    real = normalise_samples(torch.randn(300, 6, generator=g, dtype=torch.float64))
    syn = normalise_samples(torch.randn(40, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    real_seg = torch.randint(0, 5, (300,), generator=g)
    syn_seg = torch.randint(-1, 4, (40,), generator=g)  # group 4 empty on the synthetic side, some -1
    return real, syn, real_seg, syn_seg, _t(6, 128, seed)


def test_grouped_losses_equal_looped_values_and_gradients() -> None:
    real, syn, real_seg, syn_seg, t = _grouped_case()
    stats = real_cf_stats(real, real_seg, 5, t, chunk=64)
    ins_v, grp_v = instance_and_group_losses(syn, syn_seg, stats, t, 5, 0.2, 0.8)
    (g_v,) = torch.autograd.grad(ins_v + grp_v, syn)
    ins_l, grp_l = instance_and_group_losses_looped(syn, syn_seg, real, real_seg, t, 5, 0.2, 0.8)
    (g_l,) = torch.autograd.grad(ins_l + grp_l, syn)
    assert torch.allclose(ins_v, ins_l, atol=1e-12) and torch.allclose(grp_v, grp_l, atol=1e-12)
    assert grp_v > 0
    assert torch.isfinite(g_v).all() and torch.allclose(g_v, g_l, atol=1e-10)


def test_real_stats_do_not_depend_on_chunking() -> None:
    real, _, real_seg, _, t = _grouped_case(1)
    a = real_cf_stats(real, real_seg, 5, t, chunk=7)
    b = real_cf_stats(real, real_seg, 5, t, chunk=100000)
    for k in ("re", "im", "group_re", "group_im", "counts"):
        assert torch.allclose(a[k], b[k], atol=1e-12)


def test_pair_loss_equals_looped_and_eq8() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randn(7, 4, 5, generator=g, dtype=torch.float64)
    syn = torch.randn(7, 4, 5, generator=g, dtype=torch.float64)
    grp = torch.tensor([0, 0, 2, 2, 2, 3, 0])
    scale = torch.randn(7, 5, generator=g, dtype=torch.float64) * 0.1
    shift = torch.randn(7, 5, generator=g, dtype=torch.float64) * 0.1
    v, rv = pair_loss(real, syn, grp, 4, scale, shift)
    l, rl = pair_loss_looped(real, syn, grp, 4, scale, shift)
    assert torch.allclose(v, l) and torch.allclose(rv, rl)
    # Eq. 8 without deformation: sum over groups of the mean per-pair L1
    v0, r0 = pair_loss(real, syn, grp, 4)
    per = (real - syn).abs().mean(dim=(1, 2))
    expected = per[grp == 0].mean() + per[grp == 2].mean() + per[grp == 3].mean()
    assert torch.allclose(v0, expected) and r0 == 0
    # the deformation can absorb a per-channel affine difference
    warped = real * 1.5 + 0.2
    v_fit, _ = pair_loss(real, warped, grp, 4, torch.full((7, 5), 0.5, dtype=torch.float64),
                         torch.full((7, 5), 0.2, dtype=torch.float64))
    assert v_fit < 1e-12
