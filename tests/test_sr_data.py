"""Training data: aligned crops under flips/rotations, deterministic stream order, workers, subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from idc.data.indices import load_indices
from idc.data.store import write_patch_store
from idc.sr.data import PatchPairDataset, StreamSampler, stream_key

SCALE = 4


def _dihedral(img: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of an HWC array."""
    out = []
    for k in range(4):
        r = np.rot90(img, k)
        out += [r, r[:, ::-1]]
    return out


@pytest.fixture
def store(tmp_path):
    """HR patches that are exact 4x nearest-neighbour enlargements of random LR patches, so any
    correctly aligned (LR, HR) crop pair satisfies HR == kron(LR, ones(4, 4))."""
    rng = np.random.default_rng(0)
    n, lq = 6, 10
    lr = rng.integers(0, 256, (n, lq, lq, 3), dtype=np.uint8)
    hr = lr.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
    path = tmp_path / "patches.h5"
    write_patch_store(path, lr, hr, np.arange(n), np.zeros((n, 2), np.int64), source="test")
    return path, lr, hr


def _to_hwc(t: torch.Tensor) -> np.ndarray:
    return np.round(t.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def test_crops_are_aligned_and_come_from_the_source_patch(store):
    path, lr_all, hr_all = store
    gt = 24
    ds = PatchPairDataset(path, gt, seed=3)
    seen_transforms = set()
    for epoch, i in itertools.product(range(12), range(len(ds))):
        item = ds[(epoch, i)]
        lq, hq = _to_hwc(item["lq"]), _to_hwc(item["gt"])
        assert lq.shape == (gt // SCALE, gt // SCALE, 3) and hq.shape == (gt, gt, 3)
        np.testing.assert_array_equal(hq, lq.repeat(SCALE, axis=0).repeat(SCALE, axis=1))
        # Undo one of the 8 transforms: the result is an LR window of the source patch at some offset.
        source = lr_all[item["index"]]
        hits = [
            (t, top, left)
            for t, cand in enumerate(_dihedral(lq))
            for top in range(source.shape[0] - cand.shape[0] + 1)
            for left in range(source.shape[1] - cand.shape[1] + 1)
            if np.array_equal(source[top : top + cand.shape[0], left : left + cand.shape[1]], cand)
        ]
        assert hits, "LR crop is not a transformed window of its source patch"
        seen_transforms.add(hits[0][0])
    assert seen_transforms == set(range(8)), "not all flips/rotations occur"


def test_augmentation_is_deterministic_per_seed_and_epoch(store):
    path, *_ = store
    a, b = PatchPairDataset(path, 24, seed=1), PatchPairDataset(path, 24, seed=1)
    c = PatchPairDataset(path, 24, seed=2)
    same = [torch.equal(a[(e, i)]["gt"], b[(e, i)]["gt"]) for e in range(3) for i in range(6)]
    assert all(same)
    differs_seed = [not torch.equal(a[(e, i)]["gt"], c[(e, i)]["gt"]) for e in range(3) for i in range(6)]
    differs_epoch = [not torch.equal(a[(0, i)]["gt"], a[(1, i)]["gt"]) for i in range(6)]
    assert sum(differs_seed) >= 12 and sum(differs_epoch) >= 3


def test_no_augmentation_full_size_is_the_stored_patch(store):
    path, lr_all, hr_all = store
    ds = PatchPairDataset(path, 40, seed=0, augment=False)
    item = ds[(5, 2)]
    np.testing.assert_array_equal(_to_hwc(item["gt"]), hr_all[2])
    np.testing.assert_array_equal(_to_hwc(item["lq"]), lr_all[2])


def test_stream_sampler_order():
    n, seed = 7, 11
    stream = list(itertools.islice(iter(StreamSampler(n, seed)), 3 * n + 2))
    for epoch in range(3):
        block = stream[epoch * n : (epoch + 1) * n]
        assert {e for e, _ in block} == {epoch}
        assert sorted(i for _, i in block) == list(range(n))
    assert [i for _, i in stream[:n]] != [i for _, i in stream[n : 2 * n]], "epochs reuse one order"
    assert [stream_key(seed, p, n) for p in range(len(stream))] == stream
    # Starting anywhere continues the same stream (what a resumed run relies on).
    for start in (0, 3, n, 2 * n + 5):
        tail = list(itertools.islice(iter(StreamSampler(n, seed, start=start)), len(stream) - start))
        assert tail == stream[start:]


def test_loader_workers_give_the_same_batches(store):
    path, *_ = store
    ds = PatchPairDataset(path, 16, seed=5)

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=4, sampler=StreamSampler(len(ds), 5, start=2), num_workers=workers,
                            generator=torch.Generator().manual_seed(0))
        return [b["gt"] for b in itertools.islice(loader, 4)]

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x, y)


def test_index_subset(store, tmp_path):
    path, lr_all, _ = store
    idx_path = tmp_path / "idx.npy"
    np.save(idx_path, np.array([1, 4], dtype=np.int64))
    ds = PatchPairDataset(path, 40, seed=0, indices=load_indices(idx_path, len(lr_all)), augment=False)
    assert len(ds) == 2
    assert [ds[(0, i)]["index"] for i in range(2)] == [1, 4]


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array([0, 6]), "outside"),
        (np.array([-1]), "outside"),
        (np.array([[0, 1]]), "1-D integer"),
        (np.array([0.5]), "1-D integer"),
        (np.array([], np.int64), "empty"),
    ],
)
def test_bad_index_files(tmp_path, array, message):
    path = tmp_path / "idx.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        load_indices(path, 6)


def test_bad_settings(store, tmp_path):
    path, *_ = store
    with pytest.raises(ValueError, match="multiple"):
        PatchPairDataset(path, 22, seed=0)
    with pytest.raises(ValueError, match="larger"):
        PatchPairDataset(path, 44, seed=0)
    with pytest.raises(FileNotFoundError):
        PatchPairDataset(tmp_path / "missing.h5", 16, seed=0)
    with pytest.raises(FileNotFoundError):
        load_indices(tmp_path / "missing.npy", 6)
    not_npy = tmp_path / "bad.npy"
    not_npy.write_text("hello")
    with pytest.raises(ValueError, match="not a readable"):
        load_indices(not_npy, 6)
