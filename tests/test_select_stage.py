"""The selection stage end to end on a tiny patch store, and the `select` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from idc.archs import build_model, save_model
from idc.cli import main as idc_main
from idc.data.store import write_patch_store
from idc.select import pixel_features, select_baseline, select_in_splits, teacher_features

N_PATCHES = 40
TINY_EDSR = dict(num_feat=8, num_block=1, upscale=4)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    level = rng.integers(30, 220, size=(N_PATCHES, 1, 1, 1))
    contrast = rng.uniform(0, 50, size=(N_PATCHES, 1, 1, 1))
    lr = np.clip(level + contrast * rng.normal(size=(N_PATCHES, 8, 8, 3)), 0, 255).astype(np.uint8)
    hr = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    origin = np.stack([np.arange(N_PATCHES) * 8, np.zeros(N_PATCHES, int)], axis=1)
    return write_patch_store(tmp_path / "patches.h5", lr, hr, np.arange(N_PATCHES) // 10, origin,
                             scale=4, step=32, source="test")


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "teacher.safetensors", build_model("edsr", **TINY_EDSR), "edsr", TINY_EDSR)


def _lr(store: Path) -> np.ndarray:
    from idc.data.store import PatchStore

    with PatchStore(store) as s:
        return s.read_lr(np.arange(len(s)))


@pytest.mark.parametrize("method", ["random", "dcsr", "herding", "kcenter"])
def test_stage_round_trip_pixels(store: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "sel" / f"{method}.npy"
    returned = select_baseline(store_path=store, method=method, ratio=0.25, out_path=out, seed=7,
                               n_splits=4, feature_source="pixels", device="cpu")
    assert returned == out
    chosen = np.load(out)
    assert chosen.dtype == np.int64 and chosen.size == 10
    assert np.array_equal(chosen, np.unique(chosen)) and chosen.max() < N_PATCHES
    lr = _lr(store)
    expected = select_in_splits(method, pixel_features(lr), 10, rng=np.random.default_rng(7), n_splits=4,
                                images=lr if method == "dcsr" else None,
                                **({"device": "cpu"} if method in ("herding", "kcenter") else {}))
    assert np.array_equal(chosen, expected)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["method"] == method and record["n"] == 10 and record["seed"] == 7
    assert record["n_candidates"] == N_PATCHES and record["provenance"]["software"]["numpy"] == np.__version__
    assert record["seconds"]["total"] >= 0
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]


def test_stage_teacher_features(store: Path, teacher: Path, tmp_path: Path) -> None:
    out = tmp_path / "herding.npy"
    select_baseline(store_path=store, method="herding", ratio=0.2, out_path=out, seed=1, n_splits=2,
                    teacher_path=teacher, batch_size=16, device="cpu", rule="deepcore")
    from idc.archs import load_model

    features = teacher_features(load_model(teacher), _lr(store), batch_size=5, device="cpu")
    assert features.shape == (N_PATCHES, 8)
    expected = select_in_splits("herding", features, 8, rng=np.random.default_rng(1), n_splits=2,
                                rule="deepcore", device="cpu")
    assert np.array_equal(np.load(out), expected)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["feature_source"] == "teacher" and record["feature_dim"] == 8
    assert record["hparams"]["rule"] == "deepcore"


def test_teacher_features_are_pooled_features_independent_of_batching() -> None:
    torch.manual_seed(0)
    model = build_model("edsr", **TINY_EDSR).eval()
    lr = np.random.default_rng(2).integers(0, 256, size=(7, 6, 5, 3), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
        direct = model.features(x).mean(dim=(2, 3)).numpy()
    for batch_size in (1, 3, 7, 100):
        np.testing.assert_allclose(teacher_features(model, lr, batch_size, "cpu"), direct, rtol=1e-5, atol=1e-6)


def test_pixel_features_scale_and_shape() -> None:
    lr = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    np.testing.assert_allclose(pixel_features(lr), [[0.0, 1.0, 0.2]])
    with pytest.raises(ValueError, match="uint8"):
        pixel_features(lr.astype(np.float32))


def test_stage_validates_before_work(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.npy"
    common = dict(store_path=store, out_path=out, seed=0)
    with pytest.raises(ValueError, match="ratio"):
        select_baseline(method="random", ratio=1.5, **common)
    with pytest.raises(ValueError, match="unknown selection method"):
        select_baseline(method="forgetting", ratio=0.1, **common)
    with pytest.raises(ValueError, match="teacher_path"):
        select_baseline(method="kcenter", ratio=0.1, **common)
    with pytest.raises(FileNotFoundError, match="teacher model not found"):
        select_baseline(method="kcenter", ratio=0.1, teacher_path=tmp_path / "none.safetensors", **common)
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        select_baseline(method="herding", ratio=0.1, feature_source="pixels", rules="deepcore", **common)
    with pytest.raises(ValueError, match="feature_source"):
        select_baseline(method="herding", ratio=0.1, feature_source="pixel", **common)
    with pytest.raises(ValueError, match=".npy"):
        select_baseline(method="random", ratio=0.1, store_path=store, out_path=tmp_path / "x.txt", seed=0)
    with pytest.raises(FileNotFoundError, match="patch store not found"):
        select_baseline(method="random", ratio=0.1, store_path=tmp_path / "no.h5", out_path=out, seed=0)
    assert not out.exists()


def test_a_pair_count_selects_exactly_that_many(store: Path, tmp_path: Path) -> None:
    """`pairs` in place of `ratio` (a baseline at the size of another set): the same selection as
    the ratio that keeps as many, and one line for an impossible count."""
    by_count = select_baseline(store_path=store, method="random", pairs=10, out_path=tmp_path / "n.npy", seed=5,
                               n_splits=4)
    by_ratio = select_baseline(store_path=store, method="random", ratio=0.25, out_path=tmp_path / "r.npy", seed=5,
                               n_splits=4)
    assert np.array_equal(np.load(by_count), np.load(by_ratio))
    record = json.loads(by_count.with_suffix(".json").read_text())
    assert record["n"] == 10 and record["pairs_asked"] == 10 and record["ratio"] is None
    common = dict(store_path=store, method="random", out_path=tmp_path / "x.npy", seed=0)
    with pytest.raises(ValueError, match="exactly one of ratio and pairs"):
        select_baseline(ratio=0.25, pairs=10, **common)
    with pytest.raises(ValueError, match="exactly one of ratio and pairs"):
        select_baseline(**common)
    with pytest.raises(ValueError, match="positive integer"):
        select_baseline(pairs=0, **common)
    with pytest.raises(ValueError, match=f"holds only {N_PATCHES}"):
        select_baseline(pairs=N_PATCHES + 1, **common)
    assert not (tmp_path / "x.npy").exists()


def test_dataset_pair_count_counts_a_store_or_its_selection(store: Path, tmp_path: Path) -> None:
    from idc.select.stage import dataset_pair_count

    assert dataset_pair_count(store) == N_PATCHES
    picked = select_baseline(store_path=store, method="random", pairs=7, out_path=tmp_path / "p.npy", seed=1)
    assert dataset_pair_count(store, picked) == 7


def test_select_command(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dcsr.npy"
    args = ["select", "--store", str(store), "--method", "dcsr", "--ratio", "0.25", "--out", str(out),
            "--seed", "3", "--n-splits", "2", "--hparam", "threshold=median", "--hparam", "n_clusters=4"]
    assert idc_main(args) == 0
    assert np.load(out).size == 10
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["hparams"] == {"threshold": "median", "n_clusters": 4}
    assert idc_main(args[:-4] + ["--hparam", "bogus=1"]) == 1
    assert "unknown hyper-parameter" in capsys.readouterr().err


def test_teacher_features_crop_the_window_padding_of_swinir() -> None:
    torch.manual_seed(0)
    model = build_model("swinir_light_x4").eval()  # the default teacher's architecture
    lr = np.random.default_rng(3).integers(0, 256, size=(2, 12, 20, 3), dtype=np.uint8)
    with torch.no_grad():
        fmap = model.features(torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255)
    assert fmap.shape[-2:] == (16, 24)  # padded to the window size 8
    expected = fmap[:, :, :12, :20].mean(dim=(2, 3)).numpy()
    got = teacher_features(model, lr, batch_size=1, device="cpu")
    assert got.shape == (2, 60)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
