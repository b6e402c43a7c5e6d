"""Condensation-quality diagnostics that are not the training loss.

The training loss only says how well the synthetic set matches the real one *as the extractor
and the sampled frequencies see it*; a set can drive it down and still drift in colour, collapse
onto a few modes or stay noise. These measures look at the synthetic LR patches of one instance
from outside the loss:

- `mmd`: squared kernel maximum mean discrepancy (biased V-statistic, Gaussian kernel) between
  the synthetic and the real patches, on descriptors of a *fixed, seeded random* convolutional
  network (not the extractor the loss uses). Bandwidth: the median pairwise distance of the real
  descriptors, fixed once per instance. Identical sets give exactly 0.
- `colour_mean_gap` / `colour_std_gap`: mean over the RGB channels of the absolute gap between the
  synthetic and real per-channel pixel mean / standard deviation (pixel units in [0, 1]).
- `diversity`: mean pairwise RMS pixel distance among the synthetic patches (0 for duplicates),
  reported beside the real patches' own value (`real_diversity`) for scale.
- `nearest_psnr`: mean over synthetic patches of the PSNR to the nearest real patch (uint8 scale);
  alone it is a poor quality measure (a flat grey patch scores about 20 dB), hence the others.
- `coverage_psnr`: mean over *real* patches of the PSNR to the nearest synthetic patch: how well
  the few synthetic patches cover the image (rises when the set spreads over the image's content).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from idc.condense.memorisation import nearest_real_psnr
from idc.condense.upsample import to_uint8

DIAGNOSTIC_KEYS = ("mmd", "colour_mean_gap", "colour_std_gap", "diversity", "nearest_psnr", "coverage_psnr")
DIAG_PREFIX = "diag_"  # step records carry the diagnostics flat, as diag_mmd, diag_diversity, ...
PROBE_SEED = 20250101  # the probe network is the same for every instance, run and setting


class RandomConvProbe(torch.nn.Module):
    """A fixed random 3-layer conv network; a patch's descriptor is the per-channel mean and
    standard deviation of each layer's activations (first- and second-order texture statistics at
    three scales) plus the patch's mean colour. Random conv features are a common stand-in for a
    perceptual metric where no trained network is available, and they are independent of the
    condensation extractor."""

    def __init__(self, seed: int = PROBE_SEED, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers, c_in = [], 3
        for c_out in widths:
            weight = torch.randn(c_out, c_in, 3, 3, generator=gen) * math.sqrt(2.0 / (c_in * 9))
            layers.append(torch.nn.Parameter(weight, requires_grad=False))
            c_in = c_out
        self.weights = torch.nn.ParameterList(layers)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, 3, h, w) in [0, 1] -> descriptors (n, D) float64."""
        x = x.float()
        parts = [x.mean((2, 3))]
        h = x - 0.5
        for i, w in enumerate(self.weights):
            h = F.relu(F.conv2d(h, w, padding=1, stride=1 if i == 0 else 2))
            parts += [h.mean((2, 3)), h.std((2, 3), unbiased=False)]
        return torch.cat(parts, 1).double()


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # direct differences: an exact copy gives exactly 0 (no |a|^2 + |b|^2 - 2ab cancellation)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()


def gaussian_mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Biased squared MMD between sample sets x (n, D) and y (m, D), Gaussian kernel of the given
    bandwidth; >= 0, and exactly 0 for identical sets."""
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx = torch.exp(-gamma * _sq_dists(x, x)).mean()
    kyy = torch.exp(-gamma * _sq_dists(y, y)).mean()
    kxy = torch.exp(-gamma * _sq_dists(x, y)).mean()
    return max(0.0, float(kxx + kyy - 2.0 * kxy))


def mean_pairwise_rms(x: torch.Tensor) -> float:
    """Mean RMS pixel distance over distinct pairs of patches x (n, ...); 0 when n < 2."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    flat = x.reshape(n, -1).double()
    d = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist") / math.sqrt(flat.shape[1])
    return float(d.sum() / (n * (n - 1)))


def _finite_mean(values: np.ndarray, cap: float = 99.0) -> float:
    # an exact copy has infinite PSNR; cap it so means stay finite and comparable
    return float(np.mean(np.minimum(values, cap)))


class QualityMonitor:
    """Everything about the real patches of one instance that the diagnostics need, computed once;
    `measure(synthetic)` is then cheap enough to run at every logged step."""

    def __init__(self, real: torch.Tensor, *, max_real: int = 512, seed: int = 0) -> None:
        """real (N, 3, h, w) in [0, 1]. Above `max_real` patches a seeded subset stands for them (the
        paper scale has ~150 per image: all are used)."""
        real = real.detach().cpu().float()
        if real.shape[0] > max_real:
            gen = torch.Generator().manual_seed(seed)
            real = real[torch.randperm(real.shape[0], generator=gen)[:max_real]]
        self.real = real
        self.probe = RandomConvProbe()
        self.real_desc = self.probe(real)
        d = _sq_dists(self.real_desc, self.real_desc).sqrt()
        off = d[~torch.eye(len(d), dtype=torch.bool)]
        self.bandwidth = float(off.median()) if off.numel() and float(off.median()) > 0 else 1.0
        self.real_mean = real.mean((0, 2, 3)).double()
        self.real_std = real.std((0, 2, 3), unbiased=False).double()
        self.real_u8 = to_uint8(real)
        self.real_diversity = mean_pairwise_rms(real)

    def record(self, synthetic: torch.Tensor) -> dict[str, float]:
        """`measure` with the keys of a step record (diag_mmd, ...)."""
        return {DIAG_PREFIX + k: v for k, v in self.measure(synthetic).items()}

    def measure(self, synthetic: torch.Tensor) -> dict[str, float]:
        """Diagnostics of synthetic (n, 3, h, w) in [0, 1] against this instance's real patches."""
        syn = synthetic.detach().cpu().float().clamp(0, 1)
        if syn.shape[1:] != self.real.shape[1:]:
            raise ValueError(f"synthetic patches {tuple(syn.shape[1:])} and real patches "
                             f"{tuple(self.real.shape[1:])} differ in shape")
        if syn.shape[0] == 0:
            return {k: float("nan") for k in DIAGNOSTIC_KEYS}
        syn_u8 = to_uint8(syn)
        nearest, _ = nearest_real_psnr(syn_u8, self.real_u8)
        coverage, _ = nearest_real_psnr(self.real_u8, syn_u8)
        return {
            "mmd": gaussian_mmd2(self.probe(syn), self.real_desc, self.bandwidth),
            "colour_mean_gap": float((syn.mean((0, 2, 3)).double() - self.real_mean).abs().mean()),
            "colour_std_gap": float((syn.std((0, 2, 3), unbiased=False).double() - self.real_std).abs().mean()),
            "diversity": mean_pairwise_rms(syn),
            "nearest_psnr": _finite_mean(nearest),
            "coverage_psnr": _finite_mean(coverage),
        }

    def reference(self) -> dict[str, Any]:
        """Values of the real patches themselves, for scale in reports."""
        return {"real_diversity": self.real_diversity, "n_real": int(self.real.shape[0]),
                "mmd_bandwidth": self.bandwidth, "probe_seed": PROBE_SEED}


def summarise_diagnostics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last logged diagnostics and the best value (and its step) of those with a direction."""
    rows = [{"step": r["step"], "diag": {k: r[DIAG_PREFIX + k] for k in DIAGNOSTIC_KEYS if DIAG_PREFIX + k in r}}
            for r in records if any(DIAG_PREFIX + k in r for k in DIAGNOSTIC_KEYS)]
    if not rows:
        return {}
    # diversity has no "better" direction on its own (noise is the most diverse set)
    lower_is_better, higher_is_better = {"mmd", "colour_mean_gap", "colour_std_gap"}, {"coverage_psnr"}
    best = {}
    for key in sorted(lower_is_better | higher_is_better):
        values = [(r["diag"][key], r["step"]) for r in rows if np.isfinite(r["diag"].get(key, float("nan")))]
        if values:
            v, s = (min if key in lower_is_better else max)(values)
            best[key] = {"value": v, "step": s}
    return {"initial": {"step": rows[0]["step"], **rows[0]["diag"]},
            "final": {"step": rows[-1]["step"], **rows[-1]["diag"]}, "best": best}


def settling_step(steps: list[int], values: list[float], *, tolerance: float = 0.05) -> int | None:
    """First logged step from which the curve stays within `tolerance` of its total change
    (|v - v_final| <= tolerance * |v_0 - v_final|): where it stops moving. None without data."""
    if not values:
        return None
    v0, vf = values[0], values[-1]
    span = abs(v0 - vf)
    if span == 0:
        return steps[0]
    for k in range(len(values)):
        if all(abs(v - vf) <= tolerance * span for v in values[k:]):
            return steps[k]
    return steps[-1]


def plateau_step(records: list[dict[str, Any]], *, after: int, patience: int, tolerance: float,
                 key: str = "diag_mmd") -> int | None:
    """The step after the first logged step (>= `after`) at which `patience` logged values in a row
    have not improved the best value so far by more than `tolerance` (relative); None if never."""
    best, since = math.inf, 0
    for record in records:
        if record["step"] < after or key not in record or not math.isfinite(record[key]):
            continue
        value = record[key]
        if value < best * (1.0 - tolerance) or best == math.inf:
            best, since = min(best, value), 0
        else:
            best, since = min(best, value), since + 1
            if since >= patience:
                return record["step"] + 1
    return None


def read_condensation_logs(folder: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """run name -> per-image condensation logs (`<folder>/<run>/<image>.json`, name order);
    empty when `folder` does not exist. The workflow's `results/<run>/condense` and a settings
    study's `runs` folder have this layout. Only logs with a logged diagnostic are kept: an image
    whose budget share is 0 (most images at r = 1%) and a 0-step run (variant start) optimised
    nothing, so they have no curve to summarise; a run with no such log is left out."""
    root = Path(folder)
    runs: dict[str, list[dict[str, Any]]] = {}
    for sub in sorted(p for p in root.glob("*") if p.is_dir()):
        logs = [json.loads(p.read_text()) for p in sorted(sub.glob("*.json"))]
        logs = [log for log in logs if (log.get("diagnostics") or {}).get("final") and log.get("steps")]
        if logs:
            runs[sub.name] = logs
    return runs


def diagnostic_curve(log: dict[str, Any], key: str = DIAG_PREFIX + "mmd") -> tuple[list[int], list[float]]:
    """(logged steps, values) of one diagnostic in a condensation log."""
    records = [r for r in log["steps"] if key in r]
    return [r["step"] for r in records], [float(r[key]) for r in records]


def diagnostic_at_step(log: dict[str, Any], step: int, key: str = DIAG_PREFIX + "mmd") -> float:
    """The diagnostic at the logged step nearest to `step` (the first of equally near ones)."""
    steps, values = diagnostic_curve(log, key)
    return values[int(np.argmin(np.abs(np.asarray(steps) - step)))]


def mean_curves(logs: list[dict[str, Any]], key: str = DIAG_PREFIX + "mmd") -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over images) of one diagnostic or loss at the logged steps all images share."""
    curves = [dict(zip(*diagnostic_curve(log, key))) for log in logs]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return np.asarray(steps), np.asarray([np.mean([c[s] for c in curves]) for s in steps])
