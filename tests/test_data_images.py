"""Image I/O policy: grayscale, alpha, 16-bit, palette, non-image and truncated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idc.data.images import image_size, list_images, read_image, write_png


def _rgb(h: int = 9, w: int = 7) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_roundtrip_atomic(tmp_path: Path) -> None:
    img = _rgb()
    out = write_png(tmp_path / "sub" / "a.png", img)
    assert np.array_equal(read_image(out), img)
    assert image_size(out) == (9, 7)
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.png"]  # no temp file left


def test_grayscale_replicated_or_kept(tmp_path: Path) -> None:
    gray = _rgb()[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (9, 7, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))
    assert np.array_equal(read_image(tmp_path / "g.png", keep_gray=True), gray)


def test_alpha_opaque_dropped_transparent_refused(tmp_path: Path) -> None:
    img = _rgb()
    rgba = np.concatenate([img, np.full((9, 7, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(read_image(tmp_path / "opaque.png"), img)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transp.png")
    with pytest.raises(ValueError, match="transp.png"):
        read_image(tmp_path / "transp.png")


def test_palette_expanded(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), np.asarray(img.convert("RGB")))


def test_16bit_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 5), 4000, np.uint16)).save(tmp_path / "g16.png")
    with pytest.raises(ValueError, match="16-bit.*g16.png"):
        read_image(tmp_path / "g16.png")
    # 16-bit RGB PNG written by hand (PIL would silently reduce it to 8 bits on reading).
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"\x12\x34" * 3 * 2 for _ in range(2))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    (tmp_path / "rgb16.png").write_bytes(png)
    with pytest.raises(ValueError, match="16-bit.*rgb16.png"):
        image_size(tmp_path / "rgb16.png")


def test_non_image_truncated_missing(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="notes.png"):
        read_image(tmp_path / "notes.png")
    write_png(tmp_path / "t.png", _rgb(64, 64))
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.png"):
        read_image(tmp_path / "t.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_list_images(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)
    for name in ("b.png", "a.png", "c.jpg"):
        (
            write_png(tmp_path / name, _rgb())
            if name.endswith(".png")
            else Image.fromarray(_rgb()).save(tmp_path / name)
        )
    (tmp_path / ".hidden").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.png", "c.jpg"]
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="readme.txt"):
        list_images(tmp_path)


@pytest.mark.parametrize("entry", ["folder named like an image", "link to a folder", "fifo"])
def test_list_images_names_entries_it_would_otherwise_skip(tmp_path: Path, entry: str) -> None:
    """A plain sub-folder is ignored (layouts nest LR folders); these were skipped without a word."""
    import os

    write_png(tmp_path / "a.png", _rgb())
    (tmp_path / "LR").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]
    if entry == "folder named like an image":
        (tmp_path / "b.png").mkdir()
        message = r"a folder named like an image in image folder: .*b\.png"
    elif entry == "link to a folder":
        (tmp_path / "b").symlink_to(tmp_path / "LR")
        message = r"symbolic link to a folder in image folder .*: .*/b$"
    else:
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(tmp_path / "b.png")
        message = r"not a regular file \(FIFO, socket or device\) in image folder: .*b\.png"
    with pytest.raises(ValueError, match=message):
        list_images(tmp_path)


def test_write_png_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 4), np.uint8))
    assert not any(tmp_path.iterdir())
