"""Characteristic-function distribution loss (NCFD without the sampling network) and the
multi-level losses of IDC (section 3.3): L_ins, L_group (Eq. 7), L_pair (Eq. 8).

Samples are L2-normalised rows x (S, D). For frequencies t (F, D) the empirical characteristic
function is Phi(t) = mean_x exp(i t.x) = (mean cos t.x, mean sin t.x). Per frequency
  amp   = (|Phi_r| - |Phi_s|)^2
  phase = 2 (|Phi_r| |Phi_s| - Re_r Re_s - Im_r Im_s), clamped >= 1e-12
and the loss is mean_t sqrt(alpha amp + beta phase).

Group versions compute all M groups at once with one-hot matrix products (deterministic on GPU,
unlike atomic scatter-adds); `*_looped` versions are the plain per-group loops they must equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHASE_FLOOR = 1e-12
MODULUS_FLOOR = 1e-24


def normalise_samples(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def sample_frequencies(num: int, dim: int, *, std: float, generator: torch.Generator,
                       device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """t ~ N(0, std^2 I): (num, dim), from an explicit generator (on `device`)."""
    return torch.randn(num, dim, generator=generator, device=device, dtype=dtype) * std


def cf_stats(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical characteristic function (Re, Im), each (F,), of samples x (S, D)."""
    proj = x @ t.T
    return torch.cos(proj).mean(0), torch.sin(proj).mean(0)


def cf_discrepancy(re_r: torch.Tensor, im_r: torch.Tensor, re_s: torch.Tensor, im_s: torch.Tensor,
                   alpha: float, beta: float) -> torch.Tensor:
    """mean over the last axis of sqrt(alpha amp + beta phase); leading axes are kept."""
    # The floor keeps sqrt's gradient finite where a set is empty or |Phi| = 0 exactly (a masked
    # group would otherwise turn 0 * inf into NaN in the backward pass).
    mod_r = torch.sqrt(torch.clamp(re_r.square() + im_r.square(), min=MODULUS_FLOOR))
    mod_s = torch.sqrt(torch.clamp(re_s.square() + im_s.square(), min=MODULUS_FLOOR))
    amp = (mod_r - mod_s).square()
    phase = torch.clamp(2.0 * (mod_r * mod_s - re_r * re_s - im_r * im_s), min=PHASE_FLOOR)
    return torch.sqrt(alpha * amp + beta * phase).mean(-1)


def cf_loss(real: torch.Tensor, syn: torch.Tensor, t: torch.Tensor, alpha: float, beta: float,
            *, normalize: bool = True) -> torch.Tensor:
    """Distribution discrepancy between two sample sets (S_r, D) and (S_s, D)."""
    if normalize:
        real, syn = normalise_samples(real), normalise_samples(syn)
    re_r, im_r = cf_stats(real, t)
    re_s, im_s = cf_stats(syn, t)
    return cf_discrepancy(re_r, im_r, re_s, im_s, alpha, beta)


# ----------------------------------------------------------------------------------------------
# Segment (group) statistics
# ----------------------------------------------------------------------------------------------
def _one_hot(seg: torch.Tensor, groups: int, dtype: torch.dtype) -> torch.Tensor:
    """(M, S) indicator; segment -1 (unassigned) gives an all-zero column."""
    return (seg[None, :] == torch.arange(groups, device=seg.device)[:, None]).to(dtype)


def segment_cf_sums(x: torch.Tensor, seg: torch.Tensor | None, groups: int, t: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Sums of cos/sin over all samples (F,) and per segment (M, F) (None when seg is None)."""
    proj = x @ t.T
    c, s = torch.cos(proj), torch.sin(proj)
    if seg is None:
        return c.sum(0), s.sum(0), None, None
    hot = _one_hot(seg, groups, x.dtype)
    return c.sum(0), s.sum(0), hot @ c, hot @ s


@torch.no_grad()
def real_cf_stats(x: torch.Tensor, seg: torch.Tensor | None, groups: int, t: torch.Tensor, chunk: int
                  ) -> dict[str, torch.Tensor | None]:
    """Means of the real set's characteristic function, overall and per group, in chunks.

    Returns re, im (F,); group_re, group_im (M, F) and counts (M,) when `seg` is given.
    """
    n = x.shape[0]
    tot_c = torch.zeros(t.shape[0], device=x.device, dtype=x.dtype)
    tot_s = torch.zeros_like(tot_c)
    grp_c = grp_s = None
    if seg is not None:
        grp_c = torch.zeros(groups, t.shape[0], device=x.device, dtype=x.dtype)
        grp_s = torch.zeros_like(grp_c)
    for start in range(0, n, chunk):
        part_seg = None if seg is None else seg[start:start + chunk]
        c, s, gc, gs = segment_cf_sums(x[start:start + chunk], part_seg, groups, t)
        tot_c += c
        tot_s += s
        if seg is not None:
            grp_c += gc
            grp_s += gs
    out: dict[str, torch.Tensor | None] = {"re": tot_c / n, "im": tot_s / n,
                                           "group_re": None, "group_im": None, "counts": None}
    if seg is not None:
        counts = _one_hot(seg, groups, x.dtype).sum(1)
        denom = counts.clamp(min=1)[:, None]
        out.update(group_re=grp_c / denom, group_im=grp_s / denom, counts=counts)
    return out


def select_cf_stats(stats: dict[str, torch.Tensor | None], index: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """`real_cf_stats` output restricted to the frequencies `index` (columns of a pool's statistics)."""
    out = dict(stats)
    out["re"], out["im"] = stats["re"][index], stats["im"][index]
    if stats["group_re"] is not None:
        out["group_re"], out["group_im"] = stats["group_re"][:, index], stats["group_im"][:, index]
    return out


def instance_and_group_losses(syn: torch.Tensor, syn_seg: torch.Tensor | None, real: dict,
                              t: torch.Tensor, groups: int, alpha: float, beta: float
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorised L_ins and L_group = sum over groups with synthetic samples of L_dist (Eq. 7).

    `syn` (S, D) normalised synthetic samples; `syn_seg` (S,) group of each sample or -1;
    `real` from `real_cf_stats`. One projection of the synthetic samples serves both losses.
    """
    c_sum, s_sum, g_c, g_s = segment_cf_sums(syn, syn_seg, groups, t)
    n = syn.shape[0]
    loss_ins = cf_discrepancy(real["re"], real["im"], c_sum / n, s_sum / n, alpha, beta)
    if syn_seg is None:
        return loss_ins, torch.zeros((), device=syn.device, dtype=syn.dtype)
    counts = _one_hot(syn_seg, groups, syn.dtype).sum(1)
    denom = counts.clamp(min=1)[:, None]
    per_group = cf_discrepancy(real["group_re"], real["group_im"], g_c / denom, g_s / denom, alpha, beta)
    active = (counts > 0) & (real["counts"] > 0)
    loss_group = torch.where(active, per_group, torch.zeros_like(per_group)).sum()
    return loss_ins, loss_group


def instance_and_group_losses_looped(syn: torch.Tensor, syn_seg: torch.Tensor | None,
                                     real_x: torch.Tensor, real_seg: torch.Tensor | None,
                                     t: torch.Tensor, groups: int, alpha: float, beta: float
                                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain path: one characteristic-function loss per group in a Python loop."""
    loss_ins = cf_loss(real_x, syn, t, alpha, beta, normalize=False)
    loss_group = torch.zeros((), device=syn.device, dtype=syn.dtype)
    if syn_seg is None:
        return loss_ins, loss_group
    for m in range(groups):
        s_mask = syn_seg == m
        r_mask = real_seg == m
        if bool(s_mask.any()) and bool(r_mask.any()):
            loss_group = loss_group + cf_loss(real_x[r_mask], syn[s_mask], t, alpha, beta, normalize=False)
    return loss_ins, loss_group


# ----------------------------------------------------------------------------------------------
# Pair loss (Eq. 8) with the learned deformation
# ----------------------------------------------------------------------------------------------
def deform(real: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None) -> torch.Tensor:
    """Per-pair per-channel affine (1 + a) x + b on real samples (P, s, D); identity when None."""
    if scale is None:
        return real
    return real * (1.0 + scale[:, None, :]) + shift[:, None, :]


def pair_loss(real: torch.Tensor, syn: torch.Tensor, pair_group: torch.Tensor, groups: int,
              scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8 vectorised: sum_m (1/N_m) sum_i L1_i, L1_i the mean absolute difference of pair i.

    real, syn: (P, s, D) paired samples; pair_group (P,). Returns (loss, deformation L2 penalty).
    """
    zero = torch.zeros((), device=syn.device, dtype=syn.dtype)
    if real.shape[0] == 0:
        return zero, zero
    per_pair = (deform(real, scale, shift) - syn).abs().mean(dim=(1, 2))
    hot = _one_hot(pair_group, groups, syn.dtype)
    counts = hot.sum(1)
    loss = ((hot @ per_pair) / counts.clamp(min=1)).sum()
    reg = zero if scale is None else (scale.square().mean() + shift.square().mean())
    return loss, reg


def pair_loss_looped(real: torch.Tensor, syn: torch.Tensor, pair_group: torch.Tensor, groups: int,
                     scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    zero = torch.zeros((), device=syn.device, dtype=syn.dtype)
    if real.shape[0] == 0:
        return zero, zero
    loss = zero
    warped = deform(real, scale, shift)
    for m in range(groups):
        mask = pair_group == m
        if bool(mask.any()):
            loss = loss + (warped[mask] - syn[mask]).abs().mean(dim=(1, 2)).mean()
    reg = zero if scale is None else (scale.square().mean() + shift.square().mean())
    return loss, reg
