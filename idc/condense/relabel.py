"""The teacher-relabelling control: real LR patches paired with the up-sampler teacher's HR.

IDC's training pairs differ from real ones twice over: the LR side is condensed and the HR side
is the teacher's up-sampling, not the real HR patch. A real-patch dataset whose HR side comes from
the same teacher (`hr_source: teacher`) isolates the second difference, so a verdict can tell
what condensation adds from what distillation by a stronger network adds. The HR side goes
through `upsample_patches`, the function that makes IDC's HR side, so the two differ in the LR
patches only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from idc.device import resolve_device
from idc.progress import ProgressLog

logger = logging.getLogger(__name__)

# Patches up-sampled and appended per chunk: the store is written as it goes, so a whole-DIV2K
# relabelling (120k pairs, ~24 GB of HR) never sits in memory.
CHUNK = 1024


def relabel_patches(lr: np.ndarray, model: torch.nn.Module, *, batch_size: int = 16,
                    device: str | torch.device = "cpu") -> np.ndarray:
    """HR side for uint8 (n, h, w, 3) LR patches: the teacher's output, (n, H, W, 3) uint8."""
    from idc.condense.upsample import upsample_patches

    if lr.dtype != np.uint8 or lr.ndim != 4 or lr.shape[-1] != 3:
        raise ValueError(f"LR patches must be uint8 (n, h, w, 3), got {lr.dtype} {lr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(0, 3, 1, 2).float() / 255.0
    return upsample_patches(x, model, batch_size=batch_size, device=device)


def relabel_store(*, store_path: str | os.PathLike, upsampler_path: str | os.PathLike,
                  out_store: str | os.PathLike, indices: np.ndarray | None = None, source: str,
                  seed: int | None, device: str = "auto", batch_size: int = 16) -> Path:
    """Write a patch store of the real store's pairs at `indices` (every pair when None) with the
    HR side replaced by the teacher's output on the LR side. `image_id` and `origin` stay those of
    the real patches; the store's attrs name the up-sampler. Written atomically."""
    from idc.archs import deterministic_inference, load_model
    from idc.data.store import PatchStore, PatchStoreWriter

    upsampler_path = Path(upsampler_path)
    if not upsampler_path.is_file():
        raise FileNotFoundError(f"up-sampler not found: {upsampler_path}")
    real = PatchStore(store_path)
    real.verify()  # the relabelled set keeps these LR patches: they must be the ones written
    order = np.arange(len(real), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    if order.ndim != 1 or order.size == 0:
        raise ValueError(f"relabelling {store_path}: need a non-empty 1-D index array, got shape {order.shape}")
    if order.min() < 0 or order.max() >= len(real):
        raise ValueError(f"relabelling {store_path}: indices outside [0, {len(real)})")
    dev = resolve_device(device)
    model = deterministic_inference(load_model(upsampler_path))
    progress = ProgressLog(logger, "relabelled", total=order.size, unit="patches")
    with PatchStoreWriter(out_store, scale=real.scale, hr_size=real.hr_size, step=int(real.attrs.get("step", 0)),
                          source=source, seed=seed,
                          extra_attrs={"upsampler": str(upsampler_path), "hr_source": "teacher"}) as writer:
        for start in range(0, order.size, CHUNK):
            part = order[start:start + CHUNK]
            lr = real.read_lr(part)
            hr = relabel_patches(lr, model, batch_size=batch_size, device=dev)
            writer.append(lr, hr, real.image_id[part], real.origin[part])
            progress.update(part.size)
    real.close()
    logger.info("relabelled %d real pairs of %s with the teacher %s -> %s", order.size, store_path,
                upsampler_path, out_store)
    return Path(out_store)
