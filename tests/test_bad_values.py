"""Bad values that were once accepted silently (wrong results) or crashed where a one-line error
is promised: each gives one line naming the key or file, no traceback, before long work."""

from __future__ import annotations

import io
import subprocess
import sys
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
from tests.workflow_helpers import _env, copy_workflow, snakemake


def _demo() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())


def _idc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idc", *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The run failed with exactly one `error:` line holding every needle, and no traceback."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), output[-2000:]
    return errors[0]


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
    _one_line(proc, "twice.yaml", "'seed' is given twice")


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


@pytest.mark.parametrize("name", ["a{1}.png", "{image}.png", "a b.png"])
def test_training_file_names_that_cannot_be_path_components_are_refused(tmp_path, name):
    photos = tmp_path / "photos"
    _photo(photos / "good.png")
    _photo(photos / name)
    work = copy_workflow(tmp_path / "wf")
    config = _demo()
    config["data"]["trainset"] = {"source": "folder", "folder": str(photos)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(["-n", "--configfile", str(tmp_path / "c.yaml")], cwd=work, check=False)
    _one_line(proc, "data.trainset.folder", name)


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
    _one_line(_idc("store-info", str(path), "--verify"), str(path), "'hr'", "checksum")
    with h5py.File(path, "r+") as f:
        f["image_id"][2] = -4
    _one_line(_idc("store-info", str(path)), str(path), "image_id")
    with h5py.File(path, "r+") as f:
        f.attrs["scale"] = "four"
    _one_line(_idc("store-info", str(path)), str(path), "scale", "four")
