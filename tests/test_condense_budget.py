"""Synthetic patches per image (idc/condense/budget.py): IDC gets the baselines' floor(r N) pairs."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from idc.condense.budget import allocate_synthetic, describe_allocation
from tests.conftest import PROJECT_ROOT, shared_path

RATIOS = (0.01, 0.05, 0.1, 0.29, 0.3, 0.5, 0.7, 0.99)


def exact(ratio: float, n: int) -> Fraction:
    return Fraction(str(ratio)) * n  # the ratio as the decimal it is written as


def random_counts(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(1, 60))
    scale = int(rng.choice([3, 10, 40, 200]))
    return rng.integers(1, scale + 1, size=k)


def test_total_is_floor_of_r_n_and_each_count_is_floor_or_ceil() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        counts = random_counts(rng)
        ratio = float(rng.choice(RATIOS)) if trial % 2 else round(float(rng.uniform(0.001, 0.999)), 4)
        if math.floor(exact(ratio, int(counts.sum()))) < 1:
            continue  # the baselines refuse such a ratio too (tested below)
        got = allocate_synthetic(counts, ratio)
        assert got.dtype == np.int64 and got.shape == counts.shape
        assert int(got.sum()) == math.floor(exact(ratio, int(counts.sum()))), (counts, ratio)
        for n_c, g in zip(counts.tolist(), got.tolist()):
            share = exact(ratio, n_c)
            assert g in (math.floor(share), math.ceil(share)), (n_c, ratio, g)


def test_leftovers_go_to_the_largest_remainders_then_the_earlier_image() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        counts = random_counts(rng)
        ratio = float(rng.choice(RATIOS))
        if math.floor(exact(ratio, int(counts.sum()))) < 1:
            continue
        got = allocate_synthetic(counts, ratio)
        shares = [exact(ratio, int(c)) for c in counts]
        up = [i for i, (g, s) in enumerate(zip(got, shares)) if g > math.floor(s)]
        down = [i for i, (g, s) in enumerate(zip(got, shares)) if g == math.floor(s) and s != math.floor(s)]
        for i in up:
            for j in down:  # nobody left at floor has a larger remainder, or an equal one earlier
                ri, rj = shares[i] - math.floor(shares[i]), shares[j] - math.floor(shares[j])
                assert ri > rj or (ri == rj and i < j), (counts, ratio, i, j)
    # ties: ten images of 5 patches at 10% share 5 patches, the first five get them
    assert allocate_synthetic([5] * 10, 0.1).tolist() == [1] * 5 + [0] * 5


def test_deterministic_and_follows_the_images_when_remainders_differ() -> None:
    counts = np.array([151, 37, 149, 12, 8, 260, 33])  # remainders of r N_c: .1 .7 .9 .2 .8 0 .3
    first = allocate_synthetic(counts, 0.1)
    assert np.array_equal(first, allocate_synthetic(counts.copy(), 0.1))
    assert first.tolist() == [15, 4, 15, 1, 1, 26, 3]  # floors sum to 62 of 65: leftovers to .9, .8, .7
    perm = np.array([3, 0, 6, 5, 1, 4, 2])
    assert np.array_equal(allocate_synthetic(counts[perm], 0.1), first[perm])  # remainders all distinct


def test_float_noise_cannot_move_a_patch() -> None:
    # 0.29 * 100 = 28.999999999999996 in floats; written as 0.29 it is exactly 29
    assert int(allocate_synthetic([100], 0.29).sum()) == 29
    assert allocate_synthetic([50, 50], 0.29).tolist() == [15, 14]  # 14.5 each, tie to the first
    assert allocate_synthetic([150, 150], 0.1).tolist() == [15, 15]
    assert allocate_synthetic([3, 7], 0.3).tolist() == [1, 2]  # 0.9 + 2.1 = 3


def test_paper_budget_is_12076_for_any_split_of_120765_patches_over_800_images() -> None:
    from idc.counting import n_for_ratio
    from idc.data.crop import DIV2K_TRAIN_PATCHES

    rng = np.random.default_rng(2)
    n, k = DIV2K_TRAIN_PATCHES, 800
    splits = {
        "as even as possible": np.array([len(a) for a in np.array_split(np.arange(n), k)]),
        "one large image": np.r_[[n - 799 * 150], np.full(799, 150)],
        "random sizes": np.bincount(rng.integers(0, k, size=n), minlength=k),
        "DIV2K-like 2040 x h at 256/128": _div2k_like(rng, n, k),
    }
    for name, counts in splits.items():
        assert counts.sum() == n and counts.size == k and counts.min() >= 1, name
        got = allocate_synthetic(counts, 0.1)
        assert int(got.sum()) == 12_076 == n_for_ratio(n, 0.1), name
        assert int(allocate_synthetic(counts, 0.1, "ceil_per_image").sum()) > 12_076, name


def _div2k_like(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    from idc.data.crop import count_patches

    # 2040 px wide (15 windows), heights around DIV2K's 1356; then nudged to a total of exactly n
    counts = np.array([count_patches(int(h), 2040, 256, 128) for h in rng.integers(1080, 1600, size=k)])
    while counts.sum() != n:
        counts[int(rng.integers(k))] += 1 if counts.sum() < n else -1
    return counts


def test_images_below_one_patch_and_the_old_rule() -> None:
    counts = [12, 12, 4, 3]  # r N_c = 1.2, 1.2, 0.4, 0.3; floor(3.1) = 3
    assert allocate_synthetic(counts, 0.1).tolist() == [1, 1, 1, 0]
    assert allocate_synthetic(counts, 0.1, "ceil_per_image").tolist() == [2, 2, 1, 1]
    assert allocate_synthetic([35] * 100, 0.1, "ceil_per_image").sum() == 400  # the earlier mini run
    assert describe_allocation(allocate_synthetic([35] * 100, 0.1)) == {
        "total": 350, "images": 100, "histogram": {"3": 50, "4": 50}}


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="keeps no patch"):
        allocate_synthetic([3, 4], 0.1)
    with pytest.raises(ValueError, match="position 1"):
        allocate_synthetic([3, 0], 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        allocate_synthetic([], 0.1)
    with pytest.raises(ValueError, match="whole numbers"):
        allocate_synthetic([3.5, 4], 0.5)
    with pytest.raises(ValueError, match="ratio"):
        allocate_synthetic([30], 1.0)
    with pytest.raises(ValueError, match="'fair'"):
        allocate_synthetic([30], 0.1, "fair")


# ---------------------------------------------------------------- the shipped configurations


def test_paper_config_gives_12076_idc_pairs() -> None:
    from idc.condense.config import CondenseConfig, resolve_condense_config
    from idc.config import load_config
    from idc.data.crop import DIV2K_TRAIN_PATCHES

    config = load_config(PROJECT_ROOT / "config" / "config.yaml")
    spec = config["datasets"]["idc"]
    cfg = CondenseConfig.from_dict(resolve_condense_config(config["condense"]["params"], variant=spec["variant"],
                                                           ratio=spec["ratio"]))
    assert cfg.budget == "equal"
    counts = np.array([len(a) for a in np.array_split(np.arange(DIV2K_TRAIN_PATCHES), 800)])
    assert sum(cfg.synthetic_counts(counts)) == 12_076


def _store_like_the_workflow(config: dict, hr_dir: Path, out: Path) -> Path:
    from idc.data.crop import crop_images_to_store

    crop = config["data"]["crop"]
    from idc.data.images import list_images

    first = config["data"]["trainset"].get("images")  # the workflow's cut to the first K photos
    return crop_images_to_store(hr_dir, out, scale=config["scale"], hr_size=crop["hr_size"], step=crop["step"],
                                thresh=crop["thresh"], workers=1, hr_files=list_images(hr_dir)[:first])


@pytest.mark.parametrize("name", ["demo", "mini"])
def test_idc_and_random_get_equal_totals_on_the_shipped_stores(name, tmp_path) -> None:
    """The real training stores of the demo and mini configs: the per-image shares the stage
    hands out sum to the length of the Random selection the workflow makes."""
    pytest.importorskip("h5py")
    from idc.condense.config import CondenseConfig, resolve_condense_config
    from idc.condense.stage import synthetic_allocation
    from idc.config import load_config
    from idc.data.demo import build_demo_images
    from idc.select.stage import select_baseline

    config = load_config(PROJECT_ROOT / "config" / f"{name}.yaml")
    if name == "demo":
        build_demo_images(tmp_path / "demo", max_side=config["data"]["trainset"]["demo_max_side"])
        hr_dir = tmp_path / "demo" / "train" / "HR"
    else:
        hr_dir = shared_path("data", "BSD100", "HR")
    store = _store_like_the_workflow(config, hr_dir, tmp_path / "train.h5")
    idc, random = config["datasets"]["idc"], config["datasets"]["random"]
    cfg = CondenseConfig.from_dict(resolve_condense_config(config["condense"]["params"], variant=idc["variant"],
                                                           ratio=idc["ratio"]))
    shares = synthetic_allocation(store, cfg)
    picked = np.load(select_baseline(store_path=store, method="random", ratio=random["ratio"],
                                     out_path=tmp_path / "random.idx.npy", seed=0,
                                     n_splits=config["baselines"]["n_splits"], device="cpu"))
    assert sum(shares.values()) == len(picked)
    if name == "mini":  # the first 10 BSD100 images of 35 patches: 35 pairs, 4 for the first 5
        assert len(picked) == 35 and [shares[i] for i in range(10)] == [4] * 5 + [3] * 5


# ---------------------------------------------------------------- the condenser takes the counts


def _tiny(**kw):
    from idc.condense.config import CondenseConfig

    return CondenseConfig.from_dict({**dict(steps=8, warmup=4, assign_interval=1, assign_times=2, channels=8,
                                            kernel=3, num_freqs=16, groups=2, patch=4, log_every=2,
                                            checkpoint_every=0, milestones=[6], ratio=0.2), **kw})


def _real(n: int, seed: int = 0):
    import torch

    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_condenser_makes_the_counts_it_is_given(tmp_path, caplog) -> None:
    import os
    import signal

    from idc.condense.condenser import CondensationInterrupted, condense_instance, condense_instances
    from tests.doubles import TinyExtractor

    real, small = _real(12), _real(4, seed=1)
    ext = TinyExtractor(channels=4)
    syn, log = condense_instance(real, ext, _tiny(), seed=0, progress=False)
    assert syn.shape[0] == log["n_synthetic"] == 2  # alone: floor(0.2 x 12)
    syn, log = condense_instance(real, ext, _tiny(), seed=0, progress=False, n_synthetic=3)
    assert syn.shape[0] == log["n_synthetic"] == 3 and log["n_real"] == 12
    # by default a pack is the whole set: floor(0.2 x 16) = 3 -> 2.4 and 0.8 give 2 and 1
    packed = condense_instances([real, small], ext, _tiny(), seeds=[0, 1], progress=False)
    assert [s.shape[0] for s, _ in packed] == [2, 1]
    for bad in ([0, 1], [2, 5], [2], [2.5, 1]):
        with pytest.raises(ValueError, match="n_synthetic"):
            condense_instances([real, small], ext, _tiny(), seeds=[0, 1], progress=False, n_synthetic=bad)
    # a checkpoint made for another count is of no use: discarded, the run starts afresh
    ckpt = tmp_path / "c.ckpt"

    def stop(record):
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(CondensationInterrupted):
        condense_instance(real, ext, _tiny(), seed=0, progress=False, resume_path=ckpt, on_log=stop, n_synthetic=2)
    with caplog.at_level("WARNING"):
        _, log = condense_instance(real, ext, _tiny(), seed=0, progress=False, resume_path=ckpt, n_synthetic=3)
    assert "n_synthetic" in caplog.text and log["resumed_from_step"] is None
