"""idc.atomic: complete files under final names, the usual umask-based mode, no stray temporaries.

Every writer of the package goes through idc.atomic; the tests at the end check one writer of
each kind through its public function, since a 0600 model or selection is unreadable to the rest
of a group on a shared cluster.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import idc.atomic as atomic
from idc.atomic import (
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    staging_folder,
    temporary_path,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664)])
def test_mode_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    written = [atomic_write_text(tmp_path / "a.txt", "text"), atomic_write_bytes(tmp_path / "b.bin", b"\x00")]
    with atomic_open(tmp_path / "c.npy") as handle:
        np.save(handle, np.arange(3))
    written.append(tmp_path / "c.npy")
    with atomic_path(tmp_path / "d.pt") as tmp:
        torch.save({"x": 1}, tmp)
    written.append(tmp_path / "d.pt")
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}
    assert _mode(staging_folder(tmp_path / "out")) == 0o777 & ~mask


def test_contents_and_parents(tmp_path):
    target = tmp_path / "new" / "folder" / "t.md"
    assert atomic_write_text(target, "é\n") == target
    assert target.read_bytes() == "é\n".encode()
    with atomic_open(tmp_path / "arr.npy") as handle:
        np.save(handle, np.arange(4))
    assert np.array_equal(np.load(tmp_path / "arr.npy"), np.arange(4))  # numpy adds no suffix to a handle
    assert _only(tmp_path) == ["arr.npy", "new"]


@pytest.mark.parametrize("writer", ["path", "open"])
def test_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, writer):
    target = tmp_path / "t.md"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError, match="interrupted"):
        if writer == "path":
            with atomic_path(target) as tmp:
                tmp.write_text("half")
                raise RuntimeError("interrupted")
        else:
            with atomic_open(target, "w") as handle:
                handle.write("half")
                handle.flush()
                raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert _only(tmp_path) == ["t.md"]
    atomic_write_text(target, "second")
    assert target.read_text() == "second" and _only(tmp_path) == ["t.md"]


def test_failed_rename_leaves_no_temporary(tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(folder, b"data")  # the target is a folder: os.replace refuses
    assert folder.is_dir() and _only(tmp_path) == ["taken"]


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: calls.append(os.fstat(fd).st_mode) or real_fsync(fd))
    atomic_write_text(tmp_path / "a.txt", "x")
    assert [stat.S_ISREG(m) for m in calls] == [True, False]  # the file, then its folder
    calls.clear()
    with atomic_path(tmp_path / "b.pt") as tmp:
        torch.save([1], tmp)
    assert [stat.S_ISREG(m) for m in calls] == [True, False]


def test_temporary_names_are_hidden_unique_and_recognised(tmp_path):
    target = tmp_path / "store.h5"
    first, second = temporary_path(target), temporary_path(target)
    assert first != second and first.parent == tmp_path
    assert first.name.startswith(f".store.h5.tmp-{os.getpid()}-")
    first.write_bytes(b"ours")  # a live process's temporary is kept
    dead = tmp_path / ".store.h5.tmp-999999999-0123abcd"
    dead.write_bytes(b"stale")
    dead_folder = tmp_path / ".store.h5.tmp-999999999"
    dead_folder.mkdir()
    other = tmp_path / ".other.h5.tmp-999999999-0123abcd"
    other.write_bytes(b"not ours")
    assert sorted(remove_stale_temporaries(target)) == sorted([dead, dead_folder])
    assert _only(tmp_path) == sorted([first.name, other.name])
    assert sorted(tmp_path.glob(atomic.TEMPORARY_GLOB)) == sorted([first, other])


def test_atomic_open_refuses_modes_that_do_not_write_a_new_file(tmp_path):
    for mode in ("r", "ab", "r+b"):
        with pytest.raises(ValueError, match="mode"):
            with atomic_open(tmp_path / "x", mode):
                pass
    assert _only(tmp_path) == []


# One writer of each kind, through its public function: group-readable under umask 022.

def test_selection_indices_and_record_are_group_readable(tmp_path, umask):
    from idc.data.store import write_patch_store
    from idc.select import select_baseline

    umask(0o022)
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 255, size=(20, 4, 4, 3), dtype=np.uint8)
    hr = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)
    store = write_patch_store(tmp_path / "patches.h5", lr, hr, np.arange(20) // 5, np.zeros((20, 2), int),
                              scale=2, source="test")
    out = select_baseline(store_path=store, method="random", ratio=0.25, out_path=tmp_path / "sel" / "r.idx.npy",
                          seed=0, n_splits=1, feature_source="pixels", device="cpu")
    assert {p.name: _mode(p) for p in (store, out, out.with_suffix(".json"))} == {
        "patches.h5": 0o644, "r.idx.npy": 0o644, "r.idx.json": 0o644}
    assert _only(out.parent) == ["r.idx.json", "r.idx.npy"]


def test_model_file_is_group_readable(tmp_path, umask):
    from idc.archs import build_model, load_model, save_model

    umask(0o022)
    kwargs = dict(num_feat=4, num_block=1, upscale=2)
    path = save_model(tmp_path / "m.safetensors", build_model("edsr", **kwargs), "edsr", kwargs)
    assert _mode(path) == 0o644 and _only(tmp_path) == ["m.safetensors"]
    load_model(path)


def test_png_is_group_readable(tmp_path, umask):
    from idc.data.images import read_image, write_png

    umask(0o022)
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    path = write_png(tmp_path / "HR" / "a.png", img)
    assert _mode(path) == 0o644 and np.array_equal(read_image(path), img)
    assert _only(path.parent) == ["a.png"]


def test_metrics_csv_and_report_figure_are_group_readable(tmp_path, umask):
    from matplotlib.figure import Figure

    from idc.report.figures import save_figure
    from idc.sr.test import write_csv_atomic

    umask(0o022)
    csv = tmp_path / "metrics.csv"
    write_csv_atomic(pd.DataFrame({"image": ["a"], "psnr": [30.0]}), csv)
    assert _mode(csv) == 0o644 and pd.read_csv(csv).psnr.tolist() == [30.0]
    png = save_figure(Figure(figsize=(1, 1)), tmp_path / "fig.png", dpi=20)
    assert _mode(png) == 0o644 and png.read_bytes().startswith(b"\x89PNG")
    assert _only(tmp_path) == ["fig.png", "metrics.csv"]


def test_resume_checkpoints_are_group_readable(tmp_path, umask):
    from idc.condense.condenser import save_checkpoint as save_condense_checkpoint
    from idc.sr import checkpoint

    umask(0o022)
    resume = tmp_path / "resume"
    path = checkpoint.save_checkpoint(resume, {"x": torch.zeros(2)}, step=3, fingerprint="f")
    assert {p.name: _mode(p) for p in resume.iterdir()} == {path.name: 0o644, checkpoint.MANIFEST: 0o644}
    (resume / f".{path.name}.tmp-{os.getpid()}-0123abcd").write_bytes(b"half")
    checkpoint.clear_checkpoints(resume)
    assert not resume.exists()  # its temporaries went too
    save_condense_checkpoint(tmp_path / "condense" / "img.ckpt", {"step": 1})
    assert _mode(tmp_path / "condense" / "img.ckpt") == 0o644


def test_condensation_outputs_are_group_readable(tmp_path, umask):
    from idc.condense.stage import save_snapshots, save_synthetic, write_json

    umask(0o022)
    written = [save_synthetic(tmp_path / "a.npy", torch.zeros(1, 3, 2, 2)), write_json(tmp_path / "a.json", {"n": 1}),
               save_snapshots(tmp_path / "a.snapshots.npz", {})]
    assert [_mode(p) for p in written] == [0o644] * 3
    assert _only(tmp_path) == ["a.json", "a.npy", "a.snapshots.npz"]
