"""Bad values that were once accepted silently (wrong results) or crashed where a one-line error
is promised: each gives one line naming the key or file, no traceback, before long work."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image, ImageCms

from idc.config import ConfigError, load_config, validate_config
from idc.data.images import list_images, read_image
from idc.data.store import PatchStore, write_patch_store
from tests.conftest import PROJECT_ROOT
from tests.workflow_helpers import copy_workflow, one_error_line, run_idc, snakemake


def _demo() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())




# ------------------------------------------------------------------ wrong results accepted silently
@pytest.mark.parametrize("key, value", [("use_pair", "false"), ("use_group", "no"), ("steps", 10.5),
                                        ("steps", True), ("lr", "1e-2"), ("milestones", [1, "2"])])
def test_condensation_settings_of_the_wrong_type_are_refused(key, value):
    config = _demo()
    config["condense"]["params"][key] = value
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert "condense.params" in str(err.value) and key in str(err.value) and "\n" not in str(err.value)


def test_a_key_given_twice_in_a_yaml_file_is_refused(tmp_path):
    text = (PROJECT_ROOT / "config" / "demo.yaml").read_text()
    bad = tmp_path / "twice.yaml"
    bad.write_text(text + "\nseed: 1\n")  # demo.yaml already sets seed: 0
    with pytest.raises(ConfigError, match=r"twice.yaml: config key 'seed' is given twice"):
        load_config(bad)
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(["-n", "--configfile", str(bad)], cwd=work, check=False)
    one_error_line(proc, "twice.yaml", "'seed' is given twice")


def test_a_ratio_written_with_an_exponent_plans_its_condensation(tmp_path):
    """str(5e-05) has an exponent the condensation folder pattern does not allow (once a
    MissingInputException); the folder now carries the ratio in positional notation."""
    work = copy_workflow(tmp_path / "wf")
    config = _demo()
    config["datasets"]["idc"]["ratio"] = 5e-05
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(["-n", "--configfile", str(tmp_path / "tiny.yaml")], cwd=work)
    assert "condense/idc_r0.00005_s0/" in proc.stdout + proc.stderr


def _photo(path: Path, size=(96, 128), **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path, **save)
    return path


@pytest.mark.parametrize("name", ["{image}.png", "a b.png"])
def test_training_file_names_that_cannot_be_path_components_are_refused(tmp_path, name):
    photos = tmp_path / "photos"
    _photo(photos / "good.png")
    _photo(photos / name)
    work = copy_workflow(tmp_path / "wf")
    config = _demo()
    config["data"]["trainset"] = {"source": "folder", "folder": str(photos)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(["-n", "--configfile", str(tmp_path / "c.yaml")], cwd=work, check=False)
    one_error_line(proc, "data.trainset.folder", name)


def test_a_broken_symbolic_link_in_an_image_folder_is_refused(tmp_path):
    _photo(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "b.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(ValueError, match="broken symbolic link.*b.png"):
        list_images(tmp_path / "img")


def test_image_metadata_policy_exif_icc_frames(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    rotated = _photo(tmp_path / "rotated.jpg", exif=exif.tobytes())
    with pytest.raises(ValueError, match="EXIF orientation 6 refused.*rotated.jpg"):
        read_image(rotated)
    frames = tmp_path / "pages.tif"
    pages = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    pages[0].save(frames, save_all=True, append_images=pages[1:])
    with pytest.raises(ValueError, match="3 frames refused.*pages.tif"):
        read_image(frames)
    # A non-sRGB profile is applied. Adobe RGB (from scikit-image's rocket.jpg): neutral greys stay
    # neutral, and its green primary lies outside sRGB, so in sRGB it needs more green than stored.
    import skimage.data

    with Image.open(Path(skimage.data.__file__).parent / "rocket.jpg") as im:
        adobe = im.info["icc_profile"]
    assert "adobe rgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(adobe))).lower()
    pixels = np.zeros((2, 8, 3), np.uint8)
    pixels[0] = np.arange(8)[:, None] * 30  # greys 0..210
    pixels[1] = (0, 200, 0)
    tagged = tmp_path / "adobe.png"
    Image.fromarray(pixels).save(tagged, icc_profile=adobe)
    out = read_image(tagged).astype(int)
    assert np.abs(out[0] - out[0, :, :1]).max() <= 1  # R = G = B
    assert out[1, 0, 1] > 200 and out[1, 0, 0] == 0
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = tmp_path / "plain.png"
    Image.fromarray(pixels).save(plain, icc_profile=srgb)
    assert np.array_equal(read_image(plain), pixels)  # an sRGB profile changes nothing


def test_a_corrupted_store_is_found_by_its_checksums(tmp_path):
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    path = write_patch_store(tmp_path / "s.h5", lr, hr, np.zeros(6, np.int64), np.zeros((6, 2), np.int64))
    assert set(PatchStore(path).verify()) == {"lr", "hr", "image_id", "origin"}
    with h5py.File(path, "r") as f:
        info = f["hr"].id.get_chunk_info(3)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0xFF  # one flipped byte inside HR patch 3
    path.write_bytes(bytes(raw))
    one_error_line(run_idc("store-info", str(path), "--verify"), str(path), "'hr'", "checksum")
    with h5py.File(path, "r+") as f:
        f["image_id"][2] = -4
    one_error_line(run_idc("store-info", str(path)), str(path), "image_id")
    with h5py.File(path, "r+") as f:
        f.attrs["scale"] = "four"
    one_error_line(run_idc("store-info", str(path)), str(path), "scale", "four")


# ------------------------------------------------------------------ archives: one line each
def _zip(members: dict[str, bytes], patch=None) -> bytes:
    """A zip of `members`; `patch(raw, name)` may then edit the headers of member `name`."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if patch:
        patch(raw)
    return bytes(raw)


def _set_header_field(raw: bytearray, local_offset: int, central_offset: int, value: int) -> None:
    """Write a 2-byte field into every local (PK\\3\\4) and central (PK\\1\\2) header."""
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        start = raw.find(signature)
        while start != -1:
            raw[start + offset : start + offset + 2] = value.to_bytes(2, "little")
            start = raw.find(signature, start + 4)


ARCHIVES = {
    # 100 MB of zeros deflate to ~100 kB: beyond 20x the archive (and the 64 MB floor)
    "decompression bomb": (lambda: _zip({"HR/a.png": bytes(100 << 20)}), "more than the limit"),
    "encrypted member": (lambda: _zip({"HR/a.png": b"x" * 100},
                                      lambda raw: _set_header_field(raw, 6, 8, 0x1)), "encrypted member"),
    "unsupported compression": (lambda: _zip({"HR/a.png": b"x" * 100},
                                             lambda raw: _set_header_field(raw, 8, 10, 9)), "compression method 9"),
    "file and folder clash": (lambda: _zip({"HR": b"x", "HR/a.png": b"y"}), "both a file and a folder"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_archive_problems_are_one_line_errors_before_extraction(tmp_path, case):
    import hashlib

    make, reason = ARCHIVES[case]
    data = make()
    archive = tmp_path / "set.zip"
    archive.write_bytes(data)
    proc = run_idc("prepare-testset", "Set", str(tmp_path / "out"), "--url", archive.as_uri(),
                "--sha256", hashlib.sha256(data).hexdigest())
    one_error_line(proc, "set.zip", reason)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.zip"]  # nothing extracted, no temporaries


# ------------------------------------------------------------------ crashes -> one line naming the file or key
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(path: Path, width: int, height: int, extra: bytes = b"") -> Path:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4)) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_crashes_are_one_line_errors_naming_the_file_or_key(tmp_path):
    import zlib

    from idc.archs import save_model
    from idc.archs.registry import build_model

    small = _photo(tmp_path / "small.png", size=(16, 16))
    out = tmp_path / "out.png"
    # a 30000x30000 header: PIL's decompression-bomb limit, not an uncaught exception
    bomb = _png_header_only(tmp_path / "huge.png", 30000, 30000)
    one_error_line(run_idc("resize", str(bomb), str(out), "--scale", "0.5"), "huge.png", "too many pixels")
    # a text chunk that inflates beyond PIL's limit: the error names the file
    ztxt = _png_chunk(b"zTXt", b"comment\0\0" + zlib.compress(bytes(8 << 20)))
    text_bomb = _png_header_only(tmp_path / "text.png", 4, 4, extra=ztxt)
    one_error_line(run_idc("resize", str(text_bomb), str(out), "--scale", "0.5"), "text.png")
    # an output size in the terabytes is refused before allocating
    one_error_line(run_idc("resize", str(small), str(out), "--scale", "3000"), "48000x48000")
    # a folder as output path
    (tmp_path / "folder.png").mkdir()
    one_error_line(run_idc("resize", str(small), str(tmp_path / "folder.png"), "--scale", "0.5"), "folder.png", "is a folder")
    # crop --scale 0
    one_error_line(run_idc("crop", str(tmp_path / "photos"), str(tmp_path / "s.h5"), "--scale", "0"), "scale")
    # a constructor argument of the wrong type, and a zero-byte checkpoint
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    one_error_line(run_idc("archs", "import-weights", str(empty), str(tmp_path / "m.safetensors"), "--model",
                   "edsr_baseline_x4"), "empty.pth", "empty")
    one_error_line(run_idc("archs", "import-weights", str(empty), str(tmp_path / "m.safetensors"), "--model",
                   "edsr_baseline_x4", "--set", "num_feat=abc"), "num_feat='abc'")
    # a model file whose metadata asks for 1e14 weights is refused without allocating them
    tiny = tmp_path / "tiny.safetensors"
    save_model(tiny, build_model("edsr", num_feat=4, num_block=1), "edsr", {"num_feat": 4, "num_block": 1})
    from safetensors.torch import load_file, save_file

    from idc.archs.io import FORMAT_TAG, load_model

    save_file(load_file(tiny), tiny, metadata={"format": FORMAT_TAG, "arch": "edsr",
                                              "kwargs": '{"num_feat": 600000, "num_block": 1}'})
    with pytest.raises(ValueError, match=r"model file .*tiny.safetensors: .*more than the limit"):
        load_model(tiny)
    assert not list(tmp_path.glob(".*"))  # no temporaries left by any of them


def test_a_network_of_another_scale_is_refused_before_training(tmp_path):
    from idc.sr.config import TrainConfig
    from idc.sr.train import train_sr

    rng = np.random.default_rng(0)
    store = write_patch_store(tmp_path / "x2.h5", rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
                              rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), np.zeros(4, np.int64),
                              np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match=r"up-samples x4, the patch store .*x2.h5 is x2"):
        train_sr(TrainConfig(model_name="edsr_baseline_x4", steps=1, batch_size=1, gt_size=16, lr=1e-4),
                 store_path=store, out_dir=tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()
