"""Assembly of all instances' synthetic pairs into one patch store (same schema as the real one)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def assemble_store(out_path: str | os.PathLike, lr: Sequence[np.ndarray], hr: Sequence[np.ndarray],
                   image_ids: Sequence[int], *, source: str, seed: int | None, **attrs: Any) -> Path:
    """Write the per-instance uint8 NHWC patches as one store: image_id = source instance,
    origin = -1 (synthetic), step = 0 (not a sliding-window crop). Written atomically."""
    from idc.data.store import write_patch_store

    if not (len(lr) == len(hr) == len(image_ids)) or len(lr) == 0:
        raise ValueError(f"assemble_store {out_path}: need equally many (>0) LR sets, HR sets and image ids, "
                         f"got {len(lr)}, {len(hr)}, {len(image_ids)}")
    if len(set(int(i) for i in image_ids)) != len(image_ids):
        raise ValueError(f"assemble_store {out_path}: repeated image ids")
    for i, (a, b) in enumerate(zip(lr, hr)):
        if a.dtype != np.uint8 or b.dtype != np.uint8 or a.ndim != 4 or b.ndim != 4 or len(a) != len(b):
            raise ValueError(f"assemble_store {out_path}: instance {image_ids[i]} needs matching uint8 (n,h,w,3) LR/HR")
    lr_all = np.concatenate(lr)
    hr_all = np.concatenate(hr)
    ids = np.concatenate([np.full(len(a), int(i), dtype=np.int64) for a, i in zip(lr, image_ids)])
    origin = np.full((len(ids), 2), -1, dtype=np.int64)
    return write_patch_store(out_path, lr_all, hr_all, ids, origin, step=0, source=source, seed=seed, **attrs)
