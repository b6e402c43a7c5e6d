"""Condensation-quality diagnostics on known cases, and their logging by the condenser."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from idc.condense.condenser import condense_instance, dihedral
from idc.condense.config import CondenseConfig
from idc.condense.diagnostics import (
    DIAG_PREFIX,
    DIAGNOSTIC_KEYS,
    QualityMonitor,
    gaussian_mmd2,
    mean_pairwise_rms,
    settling_step,
    summarise_diagnostics,
)
from tests.doubles import TinyExtractor

SHARED_BSD100 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "BSD100" / "HR"


def _real_patches(n: int = 24, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Patches of one smooth 'image' (a colour gradient plus a few blobs): structured, not noise."""
    gen = torch.Generator().manual_seed(seed)
    side = size * 4
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    img = torch.stack([0.3 + 0.5 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * torch.sin(6 * xx * yy)])
    for _ in range(6):
        cy, cx = torch.rand(2, generator=gen) * side
        blob = torch.exp(-((yy * side - cy) ** 2 + (xx * side - cx) ** 2) / 40.0)
        img = img + 0.3 * blob * (torch.rand(3, 1, 1, generator=gen) - 0.5)
    img = img.clamp(0, 1)
    picks = torch.randint(0, side - size, (n, 2), generator=gen)
    return torch.stack([img[:, r:r + size, c:c + size] for r, c in picks.tolist()])


def test_identical_sets_give_zero_distance_and_no_colour_gap() -> None:
    real = _real_patches()
    d = QualityMonitor(real).measure(real)
    assert d["mmd"] == 0.0
    assert d["colour_mean_gap"] == pytest.approx(0.0, abs=1e-7)
    assert d["colour_std_gap"] == pytest.approx(0.0, abs=1e-7)
    assert d["nearest_psnr"] == pytest.approx(99.0)  # every patch is its own nearest real patch (capped)
    assert d["coverage_psnr"] == pytest.approx(99.0)
    assert set(d) == set(DIAGNOSTIC_KEYS)


def test_mmd_orders_a_subset_below_noise() -> None:
    real = _real_patches()
    monitor = QualityMonitor(real)
    subset = monitor.measure(real[:4])["mmd"]
    noise = monitor.measure(torch.rand(4, *real.shape[1:], generator=torch.Generator().manual_seed(1)))["mmd"]
    assert 0 < subset < noise


def test_colour_shift_raises_the_colour_gap_by_its_size() -> None:
    real = _real_patches()
    monitor = QualityMonitor(real)
    base = monitor.measure(real[:8])
    shifted = real[:8].clone()
    shifted[:, 1] = (shifted[:, 1] + 0.2).clamp(0, 1)  # the sky turns green
    after = monitor.measure(shifted)
    assert after["colour_mean_gap"] > base["colour_mean_gap"] + 0.04  # ~0.2 on one of three channels
    assert after["mmd"] > base["mmd"]


def test_duplicates_lower_diversity_to_zero() -> None:
    real = _real_patches()
    monitor = QualityMonitor(real)
    distinct = monitor.measure(real[:6])["diversity"]
    duplicated = monitor.measure(real[:1].repeat(6, 1, 1, 1))["diversity"]
    assert duplicated == 0.0 and distinct > 0.01
    # and a duplicated set covers the image worse than distinct patches
    assert monitor.measure(real[:1].repeat(6, 1, 1, 1))["coverage_psnr"] < monitor.measure(real[:6])["coverage_psnr"]


def test_mmd_and_rms_match_direct_definitions() -> None:
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(7, 4, generator=gen, dtype=torch.float64)
    bw = 1.7

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * bw * bw))

    direct = (sum(k(a, b) for a in x for b in x) / 25 + sum(k(a, b) for a in y for b in y) / 49
              - 2 * sum(k(a, b) for a in x for b in y) / 35)
    assert gaussian_mmd2(x, y, bw) == pytest.approx(direct, rel=1e-9)
    p = torch.rand(4, 3, 2, 2, generator=gen, dtype=torch.float64)
    pairs = [float(((p[i] - p[j]) ** 2).mean().sqrt()) for i in range(4) for j in range(4) if i != j]
    assert mean_pairwise_rms(p) == pytest.approx(np.mean(pairs), rel=1e-9)


def test_a_flat_grey_patch_scores_well_on_nearest_psnr_but_not_on_the_others() -> None:
    # the reason nearest-real PSNR alone is not enough: grey is "close" to everything
    real = _real_patches()
    monitor = QualityMonitor(real)
    grey = torch.full((4, *real.shape[1:]), float(real.mean()))
    real4 = monitor.measure(real[:4])
    g = monitor.measure(grey)
    assert g["diversity"] == 0.0 and g["mmd"] > real4["mmd"] and g["colour_std_gap"] > real4["colour_std_gap"]


def test_summary_takes_first_last_and_best() -> None:
    records = [{"step": s, **{DIAG_PREFIX + k: float(v) for k in DIAGNOSTIC_KEYS}} for s, v in ((0, 3), (10, 1), (20, 2))]
    summary = summarise_diagnostics(records)
    assert summary["initial"]["step"] == 0 and summary["final"]["step"] == 20
    assert summary["best"]["mmd"] == {"value": 1.0, "step": 10}
    assert summary["best"]["coverage_psnr"] == {"value": 3.0, "step": 0}
    assert summarise_diagnostics([{"step": 0, "loss": 1.0}]) == {}


def _small_cfg(**kw) -> CondenseConfig:
    base = dict(steps=24, warmup=6, assign_interval=3, assign_times=4, milestones=[18], num_freqs=32,
                channels=8, kernel=3, patch=4, groups=2, log_every=6, checkpoint_every=0)
    base.update(kw)
    return CondenseConfig.from_dict(base)


def test_condenser_logs_diagnostics_gradients_and_snapshots() -> None:
    real = _real_patches(n=20)
    extractor = TinyExtractor(channels=8, seed=0)
    syn, log = condense_instance(real, extractor, _small_cfg(log_grad_norms=True), seed=0, progress=False)
    logged = [r for r in log["steps"]]
    assert all(DIAG_PREFIX + k in r for r in logged for k in DIAGNOSTIC_KEYS)
    assert all({"grad_ins", "grad_group", "grad_pair"} <= set(r) for r in logged)
    before, after = [r for r in logged if r["step"] < 6], [r for r in logged if r["step"] > 12]
    assert all(r["grad_group"] == 0.0 and r["grad_pair"] == 0.0 for r in before)  # warm-up: L_ins only
    assert all(r["grad_pair"] > 0 for r in after) and all(r["grad_ins"] > 0 for r in logged)
    assert log["diagnostics"]["final"]["step"] == 23 and log["diagnostics"]["reference"]["n_real"] == 20
    snaps = log["snapshots"]
    assert sorted(snaps) == sorted(set(_small_cfg().snapshot_steps()) | {24})
    final = (syn[:4].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(snaps[24], final) and snaps[0].dtype == np.uint8
    # the diagnostics only observe: switching them off changes no pixel
    syn_off, log_off = condense_instance(real, extractor, _small_cfg(diagnostics=False, snapshot_patches=0),
                                         seed=0, progress=False)
    assert torch.equal(syn, syn_off) and log_off["snapshots"] == {} and log_off["diagnostics"] == {}


def test_dihedral_is_the_group_of_eight() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    outs = [dihedral(x, d) for d in range(8)]
    assert torch.equal(outs[0], x)
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8  # all distinct
    assert torch.equal(dihedral(dihedral(x, 1), 3), x)  # rotations compose
    assert torch.equal(dihedral(dihedral(x, 4), 4), x)  # a flip is an involution


@pytest.mark.parametrize("init", ["real", "tiles", "real_noise", "random"])
def test_initialisations(init: str) -> None:
    real = _real_patches(n=20)
    cfg = _small_cfg(init=init, steps=0)
    syn, log = condense_instance(real, TinyExtractor(channels=8, seed=0), cfg, seed=0, progress=False)
    assert syn.shape == (2, *real.shape[1:]) and syn.min() >= 0 and syn.max() <= 1
    flat_real = real.reshape(len(real), -1)
    if init == "real":  # exact, distinct real patches
        matches = [int((flat_real == s.reshape(1, -1)).all(1).nonzero()[0]) for s in syn]
        assert len(set(matches)) == len(matches)
    if init == "tiles":  # each quarter is a real patch downscaled by 2 (area average)
        small = torch.nn.functional.avg_pool2d(real, 2)
        h = real.shape[2] // 2
        for s in syn:
            for qr in range(2):
                for qc in range(2):
                    quarter = s[:, qr * h:(qr + 1) * h, qc * h:(qc + 1) * h].reshape(1, -1)
                    assert (small.reshape(len(real), -1) - quarter).abs().amax(1).min() < 1e-6


def test_augmented_condensation_is_seeded_and_resumes_exactly(tmp_path: Path) -> None:
    real = _real_patches(n=20)
    extractor = TinyExtractor(channels=8, seed=0)
    cfg = _small_cfg(augment="dihedral", checkpoint_every=10)
    plain, _ = condense_instance(real, extractor, _small_cfg(), seed=0, progress=False)
    a, log_a = condense_instance(real, extractor, cfg, seed=0, progress=False)
    b, _ = condense_instance(real, extractor, cfg, seed=0, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, plain)
    # interrupted after a periodic checkpoint (simulated by a run that stops at step 10), then resumed
    ckpt = tmp_path / "c.ckpt"
    short = CondenseConfig.from_dict({**cfg.to_dict(), "checkpoint_every": 10})
    condense_instance(real, extractor, short, seed=0, progress=False, resume_path=ckpt)
    assert ckpt.is_file()
    # the checkpoint is kept at step 20 of 24: a rerun resumes from it and ends where run a ended
    resumed, log_r = condense_instance(real, extractor, cfg, seed=0, progress=False, resume_path=ckpt)
    assert log_r["resumed_from_step"] == 20
    assert torch.equal(resumed, a)
    assert sorted(log_r["snapshots"]) == sorted(log_a["snapshots"])


@pytest.mark.skipif(not SHARED_BSD100.is_dir(), reason="benchmark images (../shared/data/BSD100) not present")
def test_diagnostics_separate_a_real_image_from_noise_and_from_another_image() -> None:
    from idc.data.crop import crop_image_pair
    from idc.data.images import read_image

    def patches(name: str) -> torch.Tensor:
        lr, _, _ = crop_image_pair(read_image(SHARED_BSD100 / name), None, scale=4, hr_size=96, step=64)
        return torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255.0

    a, b = patches("img_001.png"), patches("img_002.png")
    monitor = QualityMonitor(a)
    own = monitor.measure(a[::9])
    other = monitor.measure(b[::9][: len(a[::9])])
    noise = monitor.measure(torch.rand_like(a[::9]))
    assert own["mmd"] < other["mmd"] < noise["mmd"] or own["mmd"] < noise["mmd"] < other["mmd"]
    assert own["coverage_psnr"] > other["coverage_psnr"] and own["coverage_psnr"] > noise["coverage_psnr"]
    assert own["colour_mean_gap"] < other["colour_mean_gap"]


def test_settling_step_is_where_the_curve_stays_within_5_percent_of_its_total_change() -> None:
    steps = list(range(0, 100, 10))
    assert settling_step(steps, [10, 5, 2, 1, 1, 1, 1, 1, 1, 1]) == 30
    assert settling_step(steps, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]) == 90  # still moving at the end
    assert settling_step(steps, [3.0] * 10) == 0
    assert settling_step([], []) is None
