"""LMDB export in BasicSR's layout: written, then read back through our own reader, every pair
equal to the patch store; the layout rules BasicSR's readers rely on; bad keys refused."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from idc.cli import main as cli_main
from idc.data.paired import CARD_NAME, export_paired
from idc.data.store import PatchStore, write_patch_store

lmdb = pytest.importorskip("lmdb")

from idc.data.lmdb_store import LmdbImages, LmdbWriter, read_lmdb_pairs, write_lmdb  # noqa: E402

SCALE = 4


def _store(path: Path, n: int = 11, hr: int = 16) -> Path:
    rng = np.random.default_rng(9)
    write_patch_store(path, rng.integers(0, 256, (n, hr // SCALE, hr // SCALE, 3), dtype=np.uint8),
                      rng.integers(0, 256, (n, hr, hr, 3), dtype=np.uint8), np.arange(n) % 4,
                      np.stack([np.arange(n) * SCALE, np.zeros(n, int)], 1), scale=SCALE, source="t", seed=2)
    return path


def test_lmdb_export_round_trips_every_pair(tmp_path):
    store = _store(tmp_path / "s.h5")
    np.save(tmp_path / "sel.npy", np.array([0, 3, 4, 7, 10]))
    out = export_paired(tmp_path / "exp", store, scale=SCALE, fmt="lmdb", indices_path=tmp_path / "sel.npy")
    with PatchStore(store) as s:
        lr_ref, hr_ref = s.read(np.array([0, 3, 4, 7, 10]))
    back = list(read_lmdb_pairs(out / f"LR_bicubic_X{SCALE}.lmdb", out / "HR.lmdb"))
    assert len(back) == 5
    for k, (key, lq, gt) in enumerate(back):  # meta-info order is dataset order
        assert key.startswith(f"{k:06d}_")
        assert lq.dtype == gt.dtype == np.uint8
        assert np.array_equal(lq, lr_ref[k]) and np.array_equal(gt, hr_ref[k])
    # no PNG folders, no lock file; the card hashes every file that is there
    card = yaml.safe_load((out / CARD_NAME).read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {CARD_NAME}
    assert set(card["sha256"]) == on_disk
    assert not (out / "HR").exists() and not any(p.name == "lock.mdb" for p in out.rglob("*"))
    for rel, digest in card["sha256"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert card["layout"]["format"] == "lmdb" and card["layout"]["basicsr"]["io_backend"] == {"type": "lmdb"}


def test_meta_info_lines_follow_basicsr(tmp_path):
    """'<key>.png (h,w,c) <level>'; BasicSR's readers key by line.split('.')[0], equal in both."""
    store = _store(tmp_path / "s.h5", n=4)
    import h5py

    with h5py.File(store, "a") as f:  # image names with dots and spaces must still give clean keys
        f.create_dataset("image_name", data=np.asarray(["a.b c.png", "x.png", "y.y.png", "z"], dtype=object),
                         dtype=h5py.string_dtype())
    out = export_paired(tmp_path / "exp", store, scale=SCALE, fmt="lmdb")
    keys = {}
    for db, size in (("HR.lmdb", 16), (f"LR_bicubic_X{SCALE}.lmdb", 4)):
        lines = (out / db / "meta_info.txt").read_text().splitlines()
        for line in lines:
            assert re.fullmatch(rf"[A-Za-z0-9_-]+\.png \({size},{size},3\) \d", line), line
        keys[db] = [line.split(".")[0] for line in lines]
        with lmdb.open(str(out / db), readonly=True, lock=False) as env, env.begin() as txn:
            assert sorted(k.decode() for k, _ in txn.cursor()) == sorted(keys[db])
    assert keys["HR.lmdb"] == keys[f"LR_bicubic_X{SCALE}.lmdb"]
    assert keys["HR.lmdb"][0] == "000000_a-b-c_r0_c0" and keys["HR.lmdb"][2] == "000002_y-y_r8_c0"


def test_writer_grows_the_map_and_refuses_bad_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(LmdbWriter, "INITIAL_MAP_SIZE", 1 << 15)  # 32 KiB: forces several doublings
    rng = np.random.default_rng(0)
    images = [(f"k{i}", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for i in range(300)]
    write_lmdb(tmp_path / "db.lmdb", images)
    with LmdbImages(tmp_path / "db.lmdb") as db:
        assert db.keys == [k for k, _ in images]
        assert all(np.array_equal(db.read(k), img) for k, img in images)
    for bad, message in (("a.b", "cut keys at the first"), ("a b", "only letters")):
        with pytest.raises(ValueError, match=message):
            write_lmdb(tmp_path / f"bad{len(bad)}{bad[1] == '.'}.lmdb", [(bad, images[0][1])])
    with pytest.raises(ValueError, match="appears twice"):
        write_lmdb(tmp_path / "dup.lmdb", [("k", images[0][1]), ("k", images[1][1])])
    with pytest.raises(FileExistsError):
        write_lmdb(tmp_path / "db.lmdb", images[:1])


def test_reader_refuses_mismatched_databases(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    write_lmdb(tmp_path / "a.lmdb", [("x", img), ("y", img)])
    write_lmdb(tmp_path / "b.lmdb", [("x", img)])
    with pytest.raises(ValueError, match="hold different keys"):
        list(read_lmdb_pairs(tmp_path / "a.lmdb", tmp_path / "b.lmdb"))
    (tmp_path / "b.lmdb" / "meta_info.txt").write_text("x.png (9,8,3) 3\n")
    with pytest.raises(ValueError, match=r"its meta-info line says \(9, 8, 3\)"):
        LmdbImages(tmp_path / "b.lmdb").read("x")


def test_cli_lmdb_export(tmp_path, capsys):
    store = _store(tmp_path / "s.h5", n=3)
    assert cli_main(["export", str(store), str(tmp_path / "exp"), "--format", "lmdb"]) == 0
    assert (tmp_path / "exp" / "HR.lmdb" / "data.mdb").is_file()
    with pytest.raises(SystemExit):  # argparse: one usage line
        cli_main(["export", str(store), str(tmp_path / "exp2"), "--format", "tiff"])
    assert "invalid choice: 'tiff'" in capsys.readouterr().err
