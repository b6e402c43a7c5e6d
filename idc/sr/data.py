"""Training pairs from a patch store: aligned random crops, flips and 90-degree rotations.

The data order is an endless stream: position ``p`` of the stream is patch
``permutation(seed, epoch)[p % N]`` with ``epoch = p // N``, and its augmentation comes from a
generator seeded by ``(seed, epoch, patch index)``. Everything therefore depends only on
``(seed, p)``, so a run resumed at step ``s`` continues with position ``s * batch_size`` and sees
exactly the batches an uninterrupted run would have seen, with any number of loader workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# workflow/scripts/relabel_dataset.py imports load_indices from here; editing a rule's script
# makes Snakemake rerun that rule's finished jobs, so the name stays importable from here.
from idc.data.indices import load_indices  # noqa: F401

# Stream keys are (epoch, patch index) pairs; the dataset derives the augmentation from them.
StreamKey = tuple[int, int]


def stream_key(seed: int, position: int, n: int) -> StreamKey:
    """(epoch, index into the subset) of stream position ``position`` for a set of ``n`` patches."""
    epoch, offset = divmod(position, n)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return epoch, int(order[offset])


class StreamSampler(Sampler[StreamKey]):
    """Endless sampler over the (seed, position) stream, starting at ``start``.

    Each epoch's permutation is drawn once per epoch (not per position) as the stream advances.
    With ``shards`` = (rank, ranks, share) the stream is cut into steps of ``ranks * share``
    positions and only the ``rank``-th slice of ``share`` positions of each step is yielded: the
    ranks of a data-parallel job together read exactly the stream one process would read, and
    ``start`` (a multiple of ``ranks * share``) is the same global position for any rank count.
    """

    def __init__(self, n: int, seed: int, start: int = 0, *, shards: tuple[int, int, int] = (0, 1, 1)) -> None:
        if n <= 0:
            raise ValueError("cannot sample from an empty patch set")
        if start < 0:
            raise ValueError(f"stream start must be >= 0, got {start}")
        rank, ranks, share = shards
        if ranks < 1 or share < 1 or not 0 <= rank < ranks:
            raise ValueError(f"shards must be (rank, ranks, share) with 0 <= rank < ranks, got {shards}")
        if start % (ranks * share):
            raise ValueError(f"stream start {start} is not at a step boundary of {ranks} x {share} positions")
        self.n, self.seed, self.start = n, seed, start
        self.rank, self.ranks, self.share = rank, ranks, share

    def __iter__(self) -> Iterator[StreamKey]:
        epoch, offset = divmod(self.start, self.n)
        step = self.ranks * self.share
        position = self.start
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            for i in range(offset, self.n):
                if (position % step) // self.share == self.rank:
                    yield epoch, int(order[i])
                position += 1
            epoch, offset = epoch + 1, 0


def augment_pair(
    lr: np.ndarray, hr: np.ndarray, gt_size: int, scale: int, rng: np.random.Generator, flips_and_rotations: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crop (HR ``gt_size``, LR ``gt_size // scale``) plus BasicSR's augmentation:
    horizontal flip, vertical flip and transpose (a 90-degree rotation with the flips), each with
    probability 1/2, applied identically to both images. Arrays are HWC."""
    lq_size = gt_size // scale
    h, w = lr.shape[:2]
    top = int(rng.integers(0, h - lq_size + 1))
    left = int(rng.integers(0, w - lq_size + 1))
    lr = lr[top : top + lq_size, left : left + lq_size]
    hr = hr[top * scale : top * scale + gt_size, left * scale : left * scale + gt_size]
    if flips_and_rotations:
        hflip, vflip, transpose = rng.random(3) < 0.5
        if hflip:
            lr, hr = lr[:, ::-1], hr[:, ::-1]
        if vflip:
            lr, hr = lr[::-1], hr[::-1]
        if transpose:
            lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return np.ascontiguousarray(lr), np.ascontiguousarray(hr)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float32 CHW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class PatchPairDataset(Dataset):
    """Training pairs from an HDF5 patch store (``idc.data.store.PatchStore``), optionally restricted
    to an index subset. Items are addressed by stream keys ``(epoch, i)`` where ``i`` indexes the
    subset; each item is ``{"lq": (3, g/s, g/s), "gt": (3, g, g), "index": store index}``.

    The store's file handle is opened lazily in each process, so the dataset can be handed to
    loader workers.
    """

    def __init__(
        self,
        store_path: str | os.PathLike,
        gt_size: int,
        *,
        seed: int,
        indices: np.ndarray | None = None,
        augment: bool = True,
    ) -> None:
        from idc.data.store import PatchStore

        self.store_path = Path(store_path)
        # PatchStore validates the file now and opens its HDF5 handle lazily in each process.
        self.store = PatchStore(self.store_path)
        self.scale = int(self.store.attrs["scale"])
        hr_size = min(self.store.hr_shape[:2])
        if gt_size <= 0 or gt_size % self.scale:
            raise ValueError(f"gt_size {gt_size} must be a positive multiple of the store's scale {self.scale}")
        if gt_size > hr_size:
            raise ValueError(f"gt_size {gt_size} is larger than the HR patches ({hr_size}) of {self.store_path}")
        n_total = len(self.store)
        self.indices = np.arange(n_total, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        if self.indices.size == 0 or self.indices.min() < 0 or self.indices.max() >= n_total:
            raise ValueError(f"index subset is empty or outside [0, {n_total}) for {self.store_path}")
        self.gt_size, self.seed, self.augment = gt_size, seed, augment

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, key: StreamKey | int) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        index = int(self.indices[i])
        lr, hr = self.store.read([index])
        rng = np.random.default_rng([self.seed, epoch, index])
        lr, hr = augment_pair(lr[0], hr[0], self.gt_size, self.scale, rng, self.augment)
        return {"lq": to_tensor(lr), "gt": to_tensor(hr), "index": index}
