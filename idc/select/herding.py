"""Herding (Welling, 2009): greedy mean matching in feature space.

At step i (0-based) with selected set S, the next point is chosen among the unselected ones by
its distance to the target t_i = (i + 1) mu - sum_{s in S} x_s, mu the mean of all candidates:

* ``rule="classic"`` (default): argmin ||x - t_i||, i.e. the point that brings the mean of the
  selection closest to mu (the herding rule of Welling 2009 and the paper's C.2 description);
* ``rule="deepcore"``: argmax ||x - t_i||, the rule of DeepCore's ``Herding`` class, which the
  paper's baselines are said to follow.

Herding is deterministic: `rng` is accepted for the common interface but not used (ties go to
the lowest index). Points are ranked by ||x||^2 - 2 x.t (the squared distance to t less the
constant ||t||^2), so each step costs one (N, D) x (D,) product and memory stays O(N D).
"""

from __future__ import annotations

import numpy as np
import torch

from idc.device import resolve_device
from idc.select.validation import (
    as_sorted_indices,
    check_selection_args,
    resolve_dtype,
)

HERDING_RULES = ("classic", "deepcore")


def select_herding(
    features: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    images: np.ndarray | None = None,
    rule: str = "classic",
    device: str | torch.device = "auto",
    precision: str = "float64",
) -> np.ndarray:
    """Select n indices by herding on `features` (N, D); see the module docstring for `rule`."""
    if rule not in HERDING_RULES:
        raise ValueError(f"herding: rule must be one of {HERDING_RULES}, got {rule!r}")
    n_candidates = check_selection_args(
        features, n, rng, method="herding", images=images, need_feature_dims=True
    )
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision)
    with torch.no_grad():
        # torch.tensor copies, so the caller's array is never touched.
        x = torch.tensor(features, dtype=dtype, device=torch_device)
        mean = x.mean(dim=0)
        squared_norms = torch.einsum("ij,ij->i", x, x)  # no (N, D) temporary
        selected = torch.zeros(n_candidates, dtype=torch.bool, device=torch_device)
        running_sum = torch.zeros_like(mean)
        # Selected points are excluded by a sentinel that never wins the arg-min / arg-max.
        sentinel = float("inf") if rule == "classic" else float("-inf")
        chosen: list[int] = []
        for step in range(n):
            target = (step + 1) * mean - running_sum
            # ||x - t||^2 less the constant ||t||^2, which changes no arg-min or arg-max.
            distances = squared_norms - 2.0 * (x @ target)
            distances[selected] = sentinel
            if rule == "classic":
                best = int(torch.argmin(distances).item())
            else:
                best = int(torch.argmax(distances).item())
            chosen.append(best)
            selected[best] = True
            running_sum += x[best]
    return as_sorted_indices(chosen)
