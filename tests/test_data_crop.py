"""Patch cropping: BasicSR window rule, counts, HR/LR alignment, validation before work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from idc.data.crop import count_patches, crop_image_pair, crop_images_to_store, crop_positions
from idc.data.images import read_image, write_png
from idc.data.imresize import imresize_uint8
from idc.data.store import PatchStore
from tests.conftest import shared_path


def test_positions_basicsr_rule() -> None:
    assert crop_positions(2040, 256, 128) == list(range(0, 1665, 128)) + [1784]
    assert crop_positions(1356, 256, 128) == list(range(0, 1025, 128)) + [1100]
    assert crop_positions(512, 256, 128) == [0, 128, 256]  # exact fit: no extra window
    assert crop_positions(520, 256, 128, thresh=8) == [0, 128, 256]  # 8 px left, not > thresh
    assert crop_positions(520, 256, 128, thresh=7) == [0, 128, 256, 264]
    assert crop_positions(256, 256, 128) == [0]
    with pytest.raises(ValueError, match="smaller"):
        crop_positions(255, 256, 128)


def test_count_patches() -> None:
    assert count_patches(1356, 2040, 256, 128, 0) == 150
    assert count_patches(2040, 1356, 256, 128, 0) == 150
    assert count_patches(64, 64, 64, 32) == 1
    # LR view of the same windows: 339x510 at 64/32 gives the same grid.
    assert count_patches(339, 510, 64, 32) == 150


def _bsd_dir(tmp_path: Path, n: int = 3) -> Path:
    src = shared_path("data", "BSD100", "HR")
    dst = tmp_path / "hr"
    dst.mkdir()
    for p in sorted(src.iterdir())[:n]:
        shutil.copy(p, dst / p.name)
    return dst


def test_store_from_real_photos_aligned(tmp_path: Path) -> None:
    hr_dir = _bsd_dir(tmp_path)
    out = crop_images_to_store(
        hr_dir, tmp_path / "p.h5", hr_size=96, step=48, workers=1, seed=0, source="BSD100"
    )
    store = PatchStore(out)
    names = sorted(p.name for p in hr_dir.iterdir())
    assert store.image_names == names
    expected = sum(count_patches(*read_image(hr_dir / n).shape[:2], 96, 48) for n in names)
    assert (
        len(store) == expected and store.attrs["step"] == 48 and store.attrs["source"] == "BSD100"
    )
    rng = np.random.default_rng(0)
    for i in rng.choice(len(store), 8, replace=False):
        lr, hr = store.read([i])
        img = read_image(hr_dir / names[store.image_id[i]])
        r, c = store.origin[i]
        assert np.array_equal(hr[0], img[r : r + 96, c : c + 96])
        # The LR crop is the LR image under the HR window: away from the patch border (where the
        # bicubic footprint leaves the patch) it equals imresize of the HR crop up to rounding.
        own = imresize_uint8(hr[0], 0.25)
        diff = np.abs(own.astype(int) - lr[0].astype(int))[3:-3, 3:-3]
        assert diff.max() <= 1


def test_provided_lr_used(tmp_path: Path) -> None:
    hr_dir = shared_path("data", "Set5", "HR")
    lr_dir = shared_path("data", "Set5", "LR_bicubic", "X4")
    out = crop_images_to_store(
        hr_dir, tmp_path / "s.h5", hr_size=64, step=64, lr_dir=lr_dir, workers=1
    )
    store = PatchStore(out)
    i = int(store.indices_of_image(store.image_names.index("woman.png"))[-1])
    r, c = store.origin[i]
    lr_img = read_image(lr_dir / "womanx4.png")
    assert np.array_equal(store.read_lr([i])[0], lr_img[r // 4 : r // 4 + 16, c // 4 : c // 4 + 16])


def test_parallel_equals_serial(tmp_path: Path) -> None:
    hr_dir = _bsd_dir(tmp_path, 4)
    a = PatchStore(crop_images_to_store(hr_dir, tmp_path / "a.h5", hr_size=128, step=96, workers=1))
    b = PatchStore(crop_images_to_store(hr_dir, tmp_path / "b.h5", hr_size=128, step=96, workers=2))
    idx = np.arange(len(a))
    assert len(a) == len(b)
    assert np.array_equal(a.read(idx)[1], b.read(idx)[1]) and np.array_equal(
        a.read(idx)[0], b.read(idx)[0]
    )
    assert np.array_equal(a.image_id, b.image_id) and np.array_equal(a.origin, b.origin)


def test_crop_image_pair_shapes() -> None:
    hr = np.random.default_rng(0).integers(
        0, 256, (70, 50, 3), dtype=np.uint8
    )  # mod-cropped to 68x48
    lr_p, hr_p, org = crop_image_pair(hr, None, scale=4, hr_size=32, step=16)
    assert hr_p.shape == (count_patches(68, 48, 32, 16), 32, 32, 3) and lr_p.shape[1:] == (8, 8, 3)
    assert org[-1].tolist() == [36, 16]


def test_bad_inputs_fail_before_work(tmp_path: Path) -> None:
    hr_dir = tmp_path / "hr"
    rng = np.random.default_rng(0)
    write_png(hr_dir / "a.png", rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    write_png(hr_dir / "b.png", rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))
    out = tmp_path / "p.h5"
    with pytest.raises(ValueError, match="b.png.*smaller than the crop"):
        crop_images_to_store(hr_dir, out, hr_size=64, step=32, workers=1)
    (hr_dir / "b.png").unlink()
    (hr_dir / "c.png").write_text("not a png")
    with pytest.raises(ValueError, match="c.png"):
        crop_images_to_store(hr_dir, out, hr_size=64, step=32, workers=1)
    (hr_dir / "c.png").unlink()
    lr_dir = tmp_path / "lr"
    write_png(lr_dir / "ax4.png", rng.integers(0, 256, (21, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="ax4.png.*expected 20x20"):
        crop_images_to_store(hr_dir, out, hr_size=64, step=32, lr_dir=lr_dir, workers=1)
    with pytest.raises(FileNotFoundError, match="lr_missing"):
        crop_images_to_store(
            hr_dir, out, hr_size=64, step=32, lr_dir=tmp_path / "lr_missing", workers=1
        )
    with pytest.raises(FileNotFoundError, match="nohr"):
        crop_images_to_store(tmp_path / "nohr", out, hr_size=64, step=32, workers=1)
    with pytest.raises(ValueError, match="expected 5"):
        crop_images_to_store(hr_dir, out, hr_size=64, step=32, workers=1, expected_patches=5)
    with pytest.raises(ValueError, match="multiples of scale"):
        crop_images_to_store(hr_dir, out, hr_size=64, step=30, workers=1)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    crop_images_to_store(hr_dir, out, hr_size=64, step=32, workers=1, expected_patches=4)
    assert len(PatchStore(out)) == 4


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_image_found_while_cropping(tmp_path: Path, workers: int) -> None:
    # The header is intact (passes validation), the pixel data is cut: the decode fails in the
    # worker, and neither the store nor any temporary file may remain.
    hr_dir = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        write_png(hr_dir / f"{name}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (hr_dir / "b.png").read_bytes()
    (hr_dir / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="b.png"):
        crop_images_to_store(hr_dir, tmp_path / "p.h5", hr_size=32, step=32, workers=workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr"]
