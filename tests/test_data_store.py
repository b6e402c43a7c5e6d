"""HDF5 patch store: schema, atomic writes, validation, random access, worker processes."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from idc import __version__
from idc.data.store import PatchStore, PatchStoreWriter, write_patch_store


def _patches(n: int = 12, hr: int = 16, scale: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    hr_p = rng.integers(0, 256, (n, hr, hr, 3), dtype=np.uint8)
    lr_p = rng.integers(0, 256, (n, hr // scale, hr // scale, 3), dtype=np.uint8)
    ids = np.arange(n) // 4
    origin = np.stack([np.arange(n) * 2, np.arange(n) * 3], axis=1)
    return lr_p, hr_p, ids, origin


def test_schema_and_attrs(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches()
    path = tmp_path / "p.h5"
    with PatchStoreWriter(
        path, scale=4, hr_size=16, step=8, source="unit", seed=7, extra_attrs={"k": [1, 2]}
    ) as w:
        w.append(lr[:5], hr[:5], ids[:5], org[:5])
        w.append(lr[5:], hr[5:], ids[5:], org[5:])
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]
    with h5py.File(path, "r") as f:
        assert f["lr"].shape == (12, 4, 4, 3) and f["lr"].dtype == np.uint8
        assert f["hr"].shape == (12, 16, 16, 3) and f["hr"].chunks == (1, 16, 16, 3)
        assert f["hr"].compression in ("lzf", "gzip")
        assert f["image_id"].dtype == np.int64 and f["origin"].shape == (12, 2)
        assert f["hr"].maxshape[0] is None
    with PatchStore(path) as store:
        assert len(store) == 12
        assert (store.scale, store.hr_size, store.lr_size) == (4, 16, 4)
        a = store.attrs
        assert (a["scale"], a["hr_size"], a["step"], a["source"], a["seed"]) == (
            4,
            16,
            8,
            "unit",
            7,
        )
        assert a["created_by"].endswith(__version__) and a["complete"] is True
        assert np.array_equal(store.image_id, ids) and np.array_equal(store.origin, org)
        assert np.array_equal(store.indices_of_image(1), [4, 5, 6, 7])


def test_random_access_any_order(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches(30)
    path = write_patch_store(tmp_path / "p.h5", lr, hr, ids, org, step=8, source="unit", seed=0)
    store = PatchStore(path)
    rng = np.random.default_rng(3)
    for idx in (
        [3],
        [7, 2, 2, 29, 0, 7],
        rng.integers(0, 30, 50),
        np.arange(30)[::-1],
        [],
        [10, 11, 12, 20],
    ):
        idx = np.asarray(idx, dtype=np.int64)
        lr_r, hr_r = store.read(idx)
        assert np.array_equal(lr_r, lr[idx]) and np.array_equal(hr_r, hr[idx])
        assert np.array_equal(store.read_hr(idx), hr[idx]) and np.array_equal(
            store.read_lr(idx), lr[idx]
        )
    with pytest.raises(IndexError):
        store.read([30])
    with pytest.raises(IndexError):
        store.read([-1])


def test_exception_leaves_nothing(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches()
    path = tmp_path / "p.h5"
    write_patch_store(path, lr, hr, ids, org, source="old", seed=0)
    with pytest.raises(RuntimeError):
        with PatchStoreWriter(path, scale=4, hr_size=16, step=8, source="new", seed=0) as w:
            w.append(lr, hr, ids, org)
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]
    assert PatchStore(path).attrs["source"] == "old"  # previous complete store untouched


def test_bad_batches_rejected(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches()
    with PatchStoreWriter(
        tmp_path / "p.h5", scale=4, hr_size=16, step=8, source="", seed=None
    ) as w:
        with pytest.raises(ValueError, match="uint8"):
            w.append(lr.astype(np.float32), hr, ids, org)
        with pytest.raises(ValueError, match="hr batch"):
            w.append(lr, hr[:, :8], ids, org)
        with pytest.raises(ValueError, match="lr batch"):
            w.append(lr[:3], hr, ids, org)
        with pytest.raises(ValueError, match="origin"):
            w.append(lr, hr, ids, org[:, :1])
        w.append(lr, hr, 5, np.full((12, 2), -1))
    store = PatchStore(tmp_path / "p.h5")
    assert store.attrs["seed"] == -1 and (store.image_id == 5).all() and (store.origin == -1).all()
    with pytest.raises(ValueError, match="multiple"):
        PatchStoreWriter(tmp_path / "q.h5", scale=4, hr_size=18, step=8, source="", seed=0)


def test_invalid_files_named(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches()
    good = write_patch_store(tmp_path / "good.h5", lr, hr, ids, org, source="", seed=0)
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        PatchStore(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="text.h5"):
        PatchStore(tmp_path / "text.h5")
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="cut.h5"):
        PatchStore(tmp_path / "cut.h5")
    # Half-written: same schema without the completion marker.
    with h5py.File(tmp_path / "half.h5", "w") as f, h5py.File(good, "r") as g:
        for key in g:
            g.copy(key, f)
        for key, value in g.attrs.items():
            if key != "complete":
                f.attrs[key] = value
    with pytest.raises(ValueError, match="half.h5.*incomplete"):
        PatchStore(tmp_path / "half.h5")
    with h5py.File(tmp_path / "schema.h5", "w") as f:
        f.attrs["complete"] = True
        f.create_dataset("lr", data=lr)
    with pytest.raises(ValueError, match="schema.h5.*hr"):
        PatchStore(tmp_path / "schema.h5")


def _read_in_child(args):
    store, idx = args
    return store.read_hr(idx)


def test_reads_in_worker_processes(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches(20)
    store = PatchStore(write_patch_store(tmp_path / "p.h5", lr, hr, ids, org, source="", seed=0))
    store.read([0])  # open a handle in the parent first: children must not reuse it
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.read_lr([4, 1]), lr[[4, 1]])
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        outs = pool.map(_read_in_child, [(store, [i, 19 - i]) for i in range(6)])
    for i, out in enumerate(outs):
        assert np.array_equal(out, hr[[i, 19 - i]])


def test_append_store_copies_chunks(tmp_path: Path) -> None:
    lr, hr, ids, org = _patches(10)
    part_a = write_patch_store(
        tmp_path / "a.h5", lr[:4], hr[:4], ids[:4], org[:4], step=8, source="", seed=0
    )
    part_b = write_patch_store(
        tmp_path / "b.h5", lr[4:], hr[4:], ids[4:], org[4:], step=8, source="", seed=0
    )
    with PatchStoreWriter(tmp_path / "all.h5", scale=4, hr_size=16, step=8, source="", seed=0) as w:
        assert w.append_store(part_a) == 4
        w.append(lr[4:5], hr[4:5], ids[4:5], org[4:5])
        assert w.append_store(part_b) == 6
    store = PatchStore(tmp_path / "all.h5")
    order = np.r_[0:4, 4, 4:10]
    lr_r, hr_r = store.read(np.arange(11))
    assert np.array_equal(lr_r, lr[order]) and np.array_equal(hr_r, hr[order])
    assert np.array_equal(store.image_id, ids[order]) and np.array_equal(store.origin, org[order])
    other = write_patch_store(
        tmp_path / "o.h5", lr[:, :2, :2], hr[:, :8, :8], ids, org, source="", seed=0
    )
    with PatchStoreWriter(tmp_path / "x.h5", scale=4, hr_size=16, step=8, source="", seed=0) as w:
        with pytest.raises(ValueError, match="do not match"):
            w.append_store(other)


class _HRDataset:
    def __init__(self, store: PatchStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int):
        return self.store.read_hr([i])[0]


def test_torch_dataloader_workers(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    lr, hr, ids, org = _patches(16)
    store = PatchStore(write_patch_store(tmp_path / "p.h5", lr, hr, ids, org, source="", seed=0))
    store.read([0])
    loader = torch.utils.data.DataLoader(
        _HRDataset(store), batch_size=4, num_workers=2, shuffle=False
    )
    got = torch.cat(list(loader)).numpy()
    assert np.array_equal(got, hr)
