"""Paired PNG folders: export in BasicSR's layout with a dataset card, import as a patch store,
the round trip between them, and one-line errors for bad folders."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from idc.cli import main as cli_main
from idc.config import ConfigError, load_config
from idc.data.imresize import imresize_uint8
from idc.data.paired import (
    CARD_NAME,
    META_INFO_NAME,
    export_paired,
    import_paired,
    paired_files,
    read_meta_info,
    safe_name,
)
from idc.data.store import PatchStore, write_patch_store
from tests.conftest import PROJECT_ROOT

SCALE = 4


def _store(path: Path, n: int = 7, hr: int = 16, synthetic: bool = False, names: bool = True) -> Path:
    rng = np.random.default_rng(0)
    hr_p = rng.integers(0, 256, (n, hr, hr, 3), dtype=np.uint8)
    lr_p = rng.integers(0, 256, (n, hr // SCALE, hr // SCALE, 3), dtype=np.uint8)
    ids = np.arange(n) % 3
    origin = np.full((n, 2), -1) if synthetic else np.stack([np.arange(n) * SCALE, np.zeros(n, int)], 1)
    write_patch_store(path, lr_p, hr_p, ids, origin, scale=SCALE, source="test", seed=3)
    if names:
        # image names as a cropper writes them: one per image id (with a space: must be made safe)
        import h5py

        with h5py.File(path, "a") as f:
            f.create_dataset("image_name", data=np.asarray(["a b.png", "c.png", ".d.png"], dtype=object),
                             dtype=h5py.string_dtype())
    return path


def _read_all(store_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with PatchStore(store_path) as store:
        return store.read(np.arange(len(store)))


# ---------------------------------------------------------------- BasicSR's documented conventions
def _basicsr_meta_info_pairs(root: Path, card: dict) -> list[tuple[Path, Path]]:
    """Pairs as BasicSR's PairedImageDataset forms them with a meta-info file (data_util.py,
    paired_paths_from_meta_info_file): GT name = first space-separated field of each line,
    LQ name = filename_tmpl.format(GT stem) + GT extension, in dataroot_lq."""
    opts = card["layout"]["basicsr"]
    pairs = []
    for line in (root / opts["meta_info_file"]).read_text().splitlines():
        gt_name = line.strip().split(" ")[0]
        stem, ext = gt_name.rsplit(".", 1)
        pairs.append((root / opts["dataroot_gt"] / gt_name,
                      root / opts["dataroot_lq"] / f"{opts['filename_tmpl'].format(stem)}.{ext}"))
    return pairs


def _basicsr_folder_pairs(root: Path, card: dict) -> list[tuple[Path, Path]]:
    """Pairs as PairedImageDataset forms them without a meta-info file (paired_paths_from_folder):
    both folders hold the same number of files and each GT's templated name is in the LQ folder."""
    opts = card["layout"]["basicsr"]
    gt = sorted(p.name for p in (root / opts["dataroot_gt"]).iterdir())
    lq = {p.name for p in (root / opts["dataroot_lq"]).iterdir()}
    assert len(gt) == len(lq)
    pairs = []
    for name in gt:
        stem, ext = name.rsplit(".", 1)
        lq_name = f"{opts['filename_tmpl'].format(stem)}.{ext}"
        assert lq_name in lq, lq_name
        pairs.append((root / opts["dataroot_gt"] / name, root / opts["dataroot_lq"] / lq_name))
    return pairs


def test_export_is_basicsr_paired_layout_with_meta_info(tmp_path):
    store = _store(tmp_path / "s.h5")
    out = export_paired(tmp_path / "exp", store, scale=SCALE)
    card = yaml.safe_load((out / CARD_NAME).read_text())
    assert (out / "HR").is_dir() and (out / "LR_bicubic" / "X4").is_dir()
    lines = (out / META_INFO_NAME).read_text().splitlines()
    assert len(lines) == 7
    # BasicSR's meta-info line: '<name>.png (h,w,c)', no space inside the name
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+\.png \(16,16,3\)", line), line
    lr_ref, hr_ref = _read_all(store)
    for pairs in (_basicsr_meta_info_pairs(out, card), _basicsr_folder_pairs(out, card)):
        assert len(pairs) == 7
        for k, (gt, lq) in enumerate(pairs):  # meta order = folder name order = store order
            assert np.array_equal(np.asarray(Image.open(gt)), hr_ref[k])
            assert np.array_equal(np.asarray(Image.open(lq)), lr_ref[k])
    # the source image names, made safe: 'a b' -> 'a-b', '.d' -> 'd'
    names = [line.split(" ")[0] for line in lines]
    assert names[0] == "000000_a-b_r0_c0.png" and names[2] == "000002_d_r8_c0.png"


def test_card_lists_every_file_with_its_sha256_and_the_provenance(tmp_path):
    store = _store(tmp_path / "s.h5", synthetic=True)
    memo = tmp_path / "m.json"
    memo.write_text('{"overall": {"n": 7, "exact_copies": 0, "mean_db": 20.5}, "instances": {}}')
    out = export_paired(tmp_path / "exp", store, scale=SCALE, memorisation_path=memo,
                        card={"method": "idc", "ratio": 0.1, "config": {"steps": 3}, "seeds": {"master": 1}})
    card = yaml.safe_load((out / CARD_NAME).read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {CARD_NAME}
    # 7 pairs, meta_info.txt, the option files of BasicSR, MambaIR and traiNNer-redux
    assert set(card["sha256"]) == on_disk and len(on_disk) == 2 * 7 + 1 + 3
    for rel, digest in card["sha256"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert card["method"] == "idc" and card["ratio"] == 0.1 and card["pairs"] == 7
    assert card["config"] == {"steps": 3} and card["seeds"] == {"master": 1}
    assert card["memorisation"] == {"n": 7, "exact_copies": 0, "mean_db": 20.5}
    assert card["store"]["seed"] == 3 and card["provenance"]["software"]["numpy"] == np.__version__
    assert card["provenance"]["seeds"] == {"master": 1} and card["provenance"]["config"] == {"steps": 3}
    assert all(name.endswith("_syn.png") for name in card["sha256"] if name.startswith("HR/"))


@pytest.mark.parametrize("with_meta", [True, False])
def test_round_trip_export_import_gives_identical_arrays(tmp_path, with_meta):
    store = _store(tmp_path / "s.h5", n=12)
    out = export_paired(tmp_path / "exp", store, scale=SCALE)
    back = import_paired(out / "HR", tmp_path / "back.h5", lr_dir=out / "LR_bicubic" / "X4",
                         meta_info=out / META_INFO_NAME if with_meta else None,
                         scale=SCALE, hr_size=16, step=8)
    for a, b in zip(_read_all(store), _read_all(back)):
        assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)


def test_round_trip_of_a_selection(tmp_path):
    store = _store(tmp_path / "s.h5", n=10)
    idx = np.array([1, 4, 5, 9])
    np.save(tmp_path / "sel.npy", idx)
    out = export_paired(tmp_path / "exp", store, indices_path=tmp_path / "sel.npy", scale=SCALE)
    back = import_paired(out / "HR", tmp_path / "back.h5", lr_dir=out / "LR_bicubic" / "X4",
                         meta_info=out / META_INFO_NAME, scale=SCALE, hr_size=16, step=16)
    with PatchStore(store) as s:
        lr_ref, hr_ref = s.read(idx)
    lr, hr = _read_all(back)
    assert np.array_equal(lr, lr_ref) and np.array_equal(hr, hr_ref)


def test_export_replaces_an_older_export_and_leaves_no_temporary_folder(tmp_path):
    out = export_paired(tmp_path / "exp", _store(tmp_path / "s.h5", n=5), scale=SCALE)
    export_paired(tmp_path / "exp", _store(tmp_path / "t.h5", n=3), scale=SCALE)
    assert len(list((out / "HR").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "s.h5", "t.h5"]
    # a file the export did not write makes the folder someone else's too: refused, kept
    (out / "HR" / "stale.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"HR/stale\.png is not one of the files its card lists"):
        export_paired(tmp_path / "exp", _store(tmp_path / "s.h5"), scale=SCALE)
    assert (out / "HR" / "stale.png").read_bytes() == b"x" and len(list((out / "HR").iterdir())) == 4


def test_export_lr_names_same_pairs_by_identical_names_and_imports_back(tmp_path):
    store = _store(tmp_path / "s.h5", n=5)
    out = export_paired(tmp_path / "exp", store, scale=SCALE, lr_names="same")
    hr = sorted(p.name for p in (out / "HR").iterdir())
    assert hr == sorted(p.name for p in (out / "LR_bicubic" / "X4").iterdir())
    card = yaml.safe_load((out / CARD_NAME).read_text())
    assert card["layout"]["lr_name"] == "<name>.png" and card["layout"]["basicsr"]["filename_tmpl"] == "{}"
    back = import_paired(out / "HR", tmp_path / "back.h5", lr_dir=out / "LR_bicubic" / "X4",
                         meta_info=out / META_INFO_NAME, scale=SCALE, hr_size=16, step=16)
    assert all(np.array_equal(a, b) for a, b in zip(_read_all(store), _read_all(back)))


def test_export_refuses_repeated_indices(tmp_path):
    np.save(tmp_path / "sel.npy", np.array([3, 3, 3, 3]))
    with pytest.raises(ValueError, match=r"sel\.npy repeats indices"):
        export_paired(tmp_path / "exp", _store(tmp_path / "s.h5"), indices_path=tmp_path / "sel.npy", scale=SCALE)
    assert not (tmp_path / "exp").exists()


def test_export_refuses_a_store_of_another_scale(tmp_path):
    with pytest.raises(ValueError, match="scale 4"):
        export_paired(tmp_path / "exp", _store(tmp_path / "s.h5"), scale=2)
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------- import of folders made elsewhere
def _folder(tmp_path: Path, n: int = 3, size: int = 32, lr: bool = True) -> tuple[Path, Path | None]:
    rng = np.random.default_rng(1)
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    for i in range(n):
        img = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        Image.fromarray(img).save(hr_dir / f"im{i}.png")
        if lr:
            lr_dir.mkdir(exist_ok=True)
            Image.fromarray(imresize_uint8(img, 1 / SCALE)).save(lr_dir / f"im{i}x{SCALE}.png")
    return hr_dir, lr_dir if lr else None


def test_import_without_lr_uses_matlab_imresize(tmp_path):
    hr_dir, _ = _folder(tmp_path, lr=False)
    back = import_paired(hr_dir, tmp_path / "s.h5", scale=SCALE, hr_size=32, step=8)
    lr, hr = _read_all(back)
    assert len(hr) == 3 * 2  # 32x40 images, windows of 32 every 8 px: 1 x 2 per image
    first = np.asarray(Image.open(hr_dir / "im0.png"))
    assert np.array_equal(hr[0], first[:, :32]) and np.array_equal(hr[1], first[:, 8:40])
    assert np.array_equal(lr[0], imresize_uint8(first, 1 / SCALE)[:, :8])


def test_meta_info_picks_and_orders_the_pairs(tmp_path):
    hr_dir, lr_dir = _folder(tmp_path)
    meta = tmp_path / "meta.txt"
    meta.write_text("im2.png (32,40,3)\n\nim0.png\n")
    assert read_meta_info(meta) == [("im2.png", (32, 40, 3)), ("im0.png", None)]
    hr_files, lr_files = paired_files(hr_dir, lr_dir, meta, scale=SCALE)
    assert [p.name for p in hr_files] == ["im2.png", "im0.png"]
    assert [p.name for p in lr_files] == ["im2x4.png", "im0x4.png"]


def _break_unpaired_lr(hr_dir, lr_dir):
    (lr_dir / "im0x4.png").rename(lr_dir / "other.png")


def _break_wrong_scale(hr_dir, lr_dir):
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(lr_dir / "im1x4.png")  # an x2 image


def _break_non_image(hr_dir, lr_dir):
    (hr_dir / "notes.txt").write_text("not an image")


def _break_corrupt_image(hr_dir, lr_dir):
    (hr_dir / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")


@pytest.mark.parametrize("breaker,message", [
    (_break_unpaired_lr, r"im0\.png has no LR partner"),
    (_break_wrong_scale, r"im1x4\.png is 16x20, not HR im1\.png \(32x40\) divided by 4"),
    (_break_non_image, r"not an image file .*notes\.txt"),
    (_break_corrupt_image, r"im1\.png"),
])
def test_bad_folders_fail_with_one_line_naming_the_file(tmp_path, capsys, breaker, message):
    hr_dir, lr_dir = _folder(tmp_path)
    breaker(hr_dir, lr_dir)
    code = cli_main(["import-folder", str(hr_dir), str(tmp_path / "s.h5"), "--lr-dir", str(lr_dir),
                     "--hr-size", "32", "--step", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "s.h5").exists()


def test_an_lr_file_without_hr_partner_is_refused(tmp_path):
    hr_dir, lr_dir = _folder(tmp_path)
    (hr_dir / "im2.png").unlink()
    with pytest.raises(ValueError, match=r"im2x4\.png has no HR partner"):
        paired_files(hr_dir, lr_dir, scale=SCALE)


def test_meta_info_naming_a_missing_or_resized_file_is_refused(tmp_path):
    hr_dir, lr_dir = _folder(tmp_path)
    meta = tmp_path / "meta.txt"
    meta.write_text("im9.png (32,40,3)\n")
    with pytest.raises(ValueError, match=r"im9\.png is not an image in"):
        paired_files(hr_dir, lr_dir, meta, scale=SCALE)
    meta.write_text("im0.png (48,48,3)\n")
    with pytest.raises(ValueError, match=r"listed as 48x48, the file is 32x40"):
        paired_files(hr_dir, lr_dir, meta, scale=SCALE)
    meta.write_text("im0.png 48x48\n")
    with pytest.raises(ValueError, match=r"line 1: expected"):
        read_meta_info(meta)


def test_meta_info_listing_a_file_twice_or_with_other_channels_is_refused(tmp_path):
    """A name listed three times once tripled its patches; a (h,w,1) line for an RGB file passed."""
    hr_dir, lr_dir = _folder(tmp_path)
    meta = tmp_path / "meta.txt"
    meta.write_text("im0.png (32,40,3)\nim1.png (32,40,3)\nim0.png (32,40,3)\n")
    with pytest.raises(ValueError, match=r"meta\.txt line 3: im0\.png is already listed on line 1"):
        read_meta_info(meta)
    meta.write_text("im0.png (32,40,1)\n")
    with pytest.raises(ValueError, match=r"meta\.txt: im0\.png is listed with 1 channels, the file has 3"):
        paired_files(hr_dir, lr_dir, meta, scale=SCALE)
    meta.write_bytes(b"im0.png \xff\xfe(32,40,3)\n")
    with pytest.raises(ValueError, match=r"meta-info file .*meta\.txt is not UTF-8 text"):
        read_meta_info(meta)


def test_memorisation_file_errors_name_the_file(tmp_path):
    store = _store(tmp_path / "s.h5", n=2)
    bad = tmp_path / "mem.json"
    for text, message in (("{bad", r"memorisation file .*mem\.json is not JSON"),
                          ("[1]", r"memorisation file .*mem\.json must be a JSON object")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            export_paired(tmp_path / "ex", store, scale=SCALE, memorisation_path=bad)
        assert not (tmp_path / "ex").exists()


def test_cli_export_then_import(tmp_path, capsys):
    store = _store(tmp_path / "s.h5", n=4)
    (tmp_path / "card.yaml").write_text("method: external\nlicence: CC0\n")
    assert cli_main(["export", str(store), str(tmp_path / "exp"), "--card", str(tmp_path / "card.yaml")]) == 0
    card = yaml.safe_load((tmp_path / "exp" / CARD_NAME).read_text())
    assert card["method"] == "external" and card["licence"] == "CC0"
    assert cli_main(["import-folder", str(tmp_path / "exp" / "HR"), str(tmp_path / "b.h5"),
                     "--lr-dir", str(tmp_path / "exp" / "LR_bicubic" / "X4"),
                     "--meta-info", str(tmp_path / "exp" / META_INFO_NAME), "--hr-size", "16"]) == 0
    assert all(np.array_equal(a, b) for a, b in zip(_read_all(store), _read_all(tmp_path / "b.h5")))


def test_safe_name():
    assert safe_name("a b/c") == "a-b-c"
    assert safe_name(".hidden") == "hidden"
    assert safe_name("0801 (copy).png") == "0801-copy-.png"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", safe_name("日本 x")) and not safe_name("...").startswith(".")


# ---------------------------------------------------------------- configuration
def _config(tmp_path: Path, datasets: dict, export: dict | None = None) -> dict:
    base = yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())
    base["datasets"] = {**base["datasets"], **datasets}
    if export is not None:
        base["export"] = export
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return load_config(path)


def test_config_folder_dataset_needs_hr_but_no_ratio(tmp_path):
    cfg = _config(tmp_path, {"ext": {"method": "folder", "hr": "x/HR"}})
    assert cfg["datasets"]["ext"]["hr"] == "x/HR" and "ratio" not in cfg["datasets"]["ext"]
    with pytest.raises(ConfigError, match=r"^config key datasets\.ext\.hr: required for method folder$"):
        _config(tmp_path, {"ext": {"method": "folder"}})


def test_config_export_names_datasets(tmp_path):
    assert _config(tmp_path, {}, {"datasets": ["idc", "random"]})["export"]["licence"] is None
    with pytest.raises(ConfigError, match=r"config key export\.datasets: 'nope' is not a key of datasets"):
        _config(tmp_path, {}, {"datasets": ["nope"]})
