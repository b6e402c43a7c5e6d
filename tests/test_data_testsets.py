"""Benchmark test-set preparation, demo image set, and the data CLI."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idc.cli import main
from idc.data.benchmarks import prepare_testset
from idc.data.demo import DEMO_TEST, DEMO_TRAIN, build_demo_images
from idc.data.images import read_image, write_png
from idc.data.imresize import imresize_uint8, modcrop
from tests.conftest import shared_path


def test_set14_grayscale_and_modcrop(tmp_path: Path) -> None:
    hr_dir = shared_path("data", "Set14", "HR")
    out = prepare_testset("Set14", tmp_path / "Set14", hr_dir=hr_dir)
    names = sorted(p.stem for p in hr_dir.iterdir())
    assert sorted(p.stem for p in (out / "HR").iterdir()) == names
    for stem in ("bridge", "comic"):
        src = read_image(hr_dir / f"{stem}.png")
        hr = read_image(out / "HR" / f"{stem}.png")
        lr = read_image(out / "LR_bicubic" / "X4" / f"{stem}x4.png")
        assert hr.ndim == 3 and hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
        assert np.array_equal(hr, modcrop(src, 4))
        assert np.array_equal(lr, imresize_uint8(hr, 0.25))
    bridge = read_image(out / "HR" / "bridge.png")
    assert np.array_equal(bridge[..., 0], bridge[..., 2])  # gray replicated to RGB
    manifest = json.loads((out / "testset.json").read_text())
    assert manifest["n_images"] == 14 and "imresize" in manifest["lr_source"]


def test_set5_provided_lr_copied(tmp_path: Path) -> None:
    lr_dir = shared_path("data", "Set5", "LR_bicubic", "X4")
    out = prepare_testset(
        "Set5", tmp_path / "Set5", hr_dir=shared_path("data", "Set5", "HR"), lr_dir=lr_dir
    )
    for stem in ("baby", "woman"):
        assert np.array_equal(
            read_image(out / "LR_bicubic" / "X4" / f"{stem}x4.png"),
            read_image(lr_dir / f"{stem}x4.png"),
        )


def _images(folder: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        write_png(folder / f"{name}.png", rng.integers(0, 256, shape, dtype=np.uint8))


def test_testset_from_archive_url(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "Mini" / "HR", {"a": (18, 21, 3), "b": (16, 16)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(src.rglob("*.png")):
            zf.write(p, p.relative_to(src).as_posix())
    archive = tmp_path / "mini.zip"
    archive.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    out = prepare_testset("Mini", tmp_path / "out", url=archive.as_uri(), sha256=sha)
    assert read_image(out / "HR" / "a.png").shape == (16, 20, 3)
    assert read_image(out / "LR_bicubic" / "X4" / "bx4.png").shape == (4, 4, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini.zip", "out", "src"]  # no temp left
    with pytest.raises(ValueError, match="checksum mismatch"):
        prepare_testset("Mini", tmp_path / "out2", url=archive.as_uri(), sha256="1" * 64)
    assert not (tmp_path / "out2").exists()


def test_testset_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        prepare_testset("X", tmp_path / "o")
    with pytest.raises(ValueError, match="sha256"):
        prepare_testset("X", tmp_path / "o", url="http://127.0.0.1:9/x.zip")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_testset("X", tmp_path / "o", hr_dir=tmp_path / "nowhere")
    _images(tmp_path / "hr", {"a": (16, 16, 3)})
    _images(tmp_path / "lr", {"ax4": (5, 4, 3)})
    with pytest.raises(ValueError, match="ax4.png"):
        prepare_testset("X", tmp_path / "o", hr_dir=tmp_path / "hr", lr_dir=tmp_path / "lr")
    (tmp_path / "lr" / "ax4.png").unlink()
    _images(tmp_path / "lr", {"other": (4, 4, 3)})
    with pytest.raises(FileNotFoundError, match="ax4.png"):
        prepare_testset("X", tmp_path / "o", hr_dir=tmp_path / "hr", lr_dir=tmp_path / "lr")
    assert not (tmp_path / "o").exists()


def test_demo_images(tmp_path: Path) -> None:
    manifest = build_demo_images(tmp_path / "demo", max_side=96)
    assert [p.stem for p in manifest["train"]] == list(DEMO_TRAIN)
    assert [p.stem for p in manifest["test"]] == list(DEMO_TEST)
    assert not set(DEMO_TRAIN) & set(DEMO_TEST)
    for path in manifest["train"] + manifest["test"]:
        img = read_image(path)
        assert (
            img.ndim == 3
            and max(img.shape[:2]) <= 96
            and img.shape[0] % 4 == 0
            and img.shape[1] % 4 == 0
        )
        assert img.std() > 5  # a real photo, not a blank
    first = (tmp_path / "demo" / "test" / "HR" / "coffee.png").read_bytes()
    build_demo_images(tmp_path / "again", max_side=96)
    assert (tmp_path / "again" / "test" / "HR" / "coffee.png").read_bytes() == first


def test_cli_resize_gray_and_color(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (18, 22), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert (
        main(["resize", str(tmp_path / "g.png"), str(tmp_path / "g4.png"), "--scale", "0.25"]) == 0
    )
    out = np.asarray(Image.open(tmp_path / "g4.png"))
    assert out.ndim == 2 and np.array_equal(
        out, imresize_uint8(gray[:16, :20], 0.25)
    )  # mod-cropped first
    color = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    write_png(tmp_path / "c.png", color)
    assert main(["resize", str(tmp_path / "c.png"), str(tmp_path / "c2.png"), "--scale", "2"]) == 0
    assert np.array_equal(read_image(tmp_path / "c2.png"), imresize_uint8(color, 2))
    assert (
        main(["resize", str(tmp_path / "missing.png"), str(tmp_path / "x.png"), "--scale", "0.5"])
        == 1
    )


def test_cli_set5_bit_exact(tmp_path: Path) -> None:
    hr = shared_path("data", "Set5", "HR", "woman.png")
    assert main(["resize", str(hr), str(tmp_path / "w.png"), "--scale", "0.25"]) == 0
    ref = read_image(shared_path("data", "Set5", "LR_bicubic", "X4", "womanx4.png"))
    assert np.array_equal(read_image(tmp_path / "w.png"), ref)


def test_cli_crop_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "hr", {"a": (40, 48, 3), "b": (32, 32, 3)})
    store = tmp_path / "p.h5"
    assert (
        main(
            [
                "crop",
                str(tmp_path / "hr"),
                str(store),
                "--hr-size",
                "32",
                "--step",
                "16",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["store-info", str(store)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 2 * 2 + 1 and info["hr"] == [32, 32, 3] and info["attrs"]["step"] == 16
    assert (
        main(["crop", str(tmp_path / "hr"), str(store), "--hr-size", "64", "--workers", "1"]) == 1
    )
