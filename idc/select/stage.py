"""Workflow stage: patch store in, selected index array (.npy) plus a JSON sidecar out.

The output `<out>.npy` holds the sorted int64 indices of the selected patches in the store;
`<out>.json` beside it records the method, counts, seed, hyper-parameters, timings and the
provenance record (`idc.provenance`). Both files appear atomically (`idc.atomic`), the sidecar first, so an index file under its final name always has its record.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc.atomic import atomic_open, atomic_write_text
from idc.counting import n_for_ratio
from idc.device import resolve_device
from idc.progress import ProgressLog
from idc.provenance import PROVENANCE_KEY, provenance
from idc.select.features import pixel_features, teacher_features
from idc.select.methods import FEATURE_METHODS, uses_teacher_features
from idc.select.protocol import select_in_splits

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

FEATURE_SOURCES = ("teacher", "pixels")
_READ_BLOCK = 4096  # patches per store read, so progress can be logged


def _selector_hparams(select: Any) -> set[str]:
    fixed = {"features", "n", "rng", "images"}
    return {
        name
        for name, parameter in inspect.signature(select).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in fixed
    }


def _read_all_lr(store: Any) -> np.ndarray:
    n_patches = len(store)
    lr = np.empty((n_patches,) + tuple(store.lr_shape), dtype=np.uint8)
    progress = ProgressLog(logger, "read LR", n_patches, unit="patches")
    for start in range(0, n_patches, _READ_BLOCK):
        stop = min(start + _READ_BLOCK, n_patches)
        lr[start:stop] = store.read_lr(np.arange(start, stop))
        progress.update(stop - start)
    return lr


def dataset_pair_count(store_path: str | os.PathLike, indices_path: str | os.PathLike | None = None) -> int:
    """Pairs of a training set: its index file's length where it is a selection, else its
    store's (an imported folder, a condensed or relabelled set)."""
    from idc.data.store import PatchStore

    with PatchStore(store_path) as store:
        n_store = len(store)
    if indices_path is None:
        return n_store
    from idc.sr.data import load_indices

    return int(load_indices(indices_path, n_store).size)


def _check_arguments(selectors: dict[str, Any], *, method: str, ratio: float | None, pairs: int | None, seed: int,
                     n_splits: int, feature_source: str, out_path: str | os.PathLike,
                     hparams: dict[str, Any]) -> Path:
    """Every argument checked before the store is read; returns the output path."""
    if method not in selectors:
        raise ValueError(f"unknown selection method {method!r}; known: {sorted(selectors)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if (ratio is None) == (pairs is None):
        raise ValueError(f"give exactly one of ratio and pairs, got ratio={ratio!r} and pairs={pairs!r}")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not 0.0 < float(ratio) < 1.0):
        raise ValueError(f"ratio must be in (0, 1), got {ratio!r}")
    if pairs is not None and (isinstance(pairs, bool) or not isinstance(pairs, (int, np.integer)) or pairs < 1):
        raise ValueError(f"pairs must be a positive integer, got {pairs!r}")
    if int(n_splits) < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if feature_source not in FEATURE_SOURCES:
        raise ValueError(f"feature_source must be one of {FEATURE_SOURCES}, got {feature_source!r}")
    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise ValueError(f"out_path must end in .npy, got {out_path}")
    accepted = _selector_hparams(selectors[method])
    unknown = set(hparams) - accepted
    if unknown:
        raise ValueError(f"{method}: unknown hyper-parameter(s) {sorted(unknown)}; accepted: {sorted(accepted)}")
    return out_path


def _features(lr: np.ndarray, method: str, feature_source: str, teacher_path: str | os.PathLike | None,
              batch_size: int, device: torch.device) -> np.ndarray:
    """The feature space `method` selects in: none (only N matters), the pixels', or the
    teacher's pooled features."""
    if method not in FEATURE_METHODS:
        return np.zeros((len(lr), 0), dtype=np.float32)
    if feature_source == "pixels":
        return pixel_features(lr)
    from idc.archs import deterministic_inference, load_model

    model = deterministic_inference(load_model(teacher_path))
    return teacher_features(model, lr, batch_size=batch_size, device=device)


def select_baseline(
    *,
    store_path: str | os.PathLike,
    method: str,
    ratio: float | None = None,
    out_path: str | os.PathLike,
    seed: int,
    pairs: int | None = None,
    n_splits: int = 20,
    feature_source: str = "teacher",
    teacher_path: str | os.PathLike | None = None,
    batch_size: int = 256,
    device: str = "auto",
    **hparams: Any,
) -> Path:
    """Select ratio x N patches of the store (or exactly `pairs` of them) with `method` under the
    20-group protocol.

    Exactly one of `ratio` and `pairs` is given: `pairs` builds a baseline at the size of another
    set (for example Random at the pair count of a condensed set imported from a folder). Writes the sorted int64 indices to `out_path` (.npy) and a sidecar `out_path` with suffix
    .json; returns `out_path`. `feature_source` and `teacher_path` matter for Herding and
    K-Center only; `hparams` go to the selector (e.g. ``rule="deepcore"``, ``threshold="median"``).
    """
    from idc.select import SELECTORS  # the package imports this module

    started = time.perf_counter()
    out_path = _check_arguments(SELECTORS, method=method, ratio=ratio, pairs=pairs, seed=seed, n_splits=n_splits,
                                feature_source=feature_source, out_path=out_path, hparams=hparams)
    select = SELECTORS[method]
    uses_features = method in FEATURE_METHODS
    uses_teacher = uses_teacher_features(method, feature_source)
    if uses_teacher:
        if teacher_path is None:
            raise ValueError(f"{method} with feature_source='teacher' needs teacher_path")
        if not Path(teacher_path).is_file():
            raise FileNotFoundError(f"teacher model not found: {teacher_path}")
    torch_device = resolve_device(device)
    if "device" in _selector_hparams(select):
        hparams.setdefault("device", str(torch_device))

    from idc.data.store import PatchStore

    with PatchStore(store_path) as store:
        store.verify()  # selection reads every patch: a corrupt chunk would be selected silently
        n_candidates = len(store)
        if pairs is None:
            n_total = n_for_ratio(n_candidates, ratio)
        elif pairs > n_candidates:
            raise ValueError(f"{method}: {pairs} pairs asked of {store_path}, which holds only {n_candidates}")
        else:
            n_total = int(pairs)
        logger.info("%s: selecting %d of %d patches from %s", method, n_total, n_candidates, store_path)
        lr = _read_all_lr(store)
        store_source = store.attrs.get("source", "")

    feature_started = time.perf_counter()
    features = _features(lr, method, feature_source, teacher_path, batch_size, torch_device)
    feature_seconds = time.perf_counter() - feature_started

    select_started = time.perf_counter()
    indices = select_in_splits(
        method,
        features,
        n_total,
        rng=np.random.default_rng(int(seed)),
        n_splits=int(n_splits),
        images=lr if method == "dcsr" else None,
        **hparams,
    )
    select_seconds = time.perf_counter() - select_started

    hparams_record = {key: (value if isinstance(value, (int, float, str, bool)) else str(value))
                      for key, value in hparams.items()}
    record = {
        "method": method,
        "n": int(indices.size),
        "n_candidates": int(n_candidates),
        "ratio": None if ratio is None else float(ratio),
        "pairs_asked": None if pairs is None else int(pairs),
        "seed": int(seed),
        "n_splits": int(n_splits),
        "feature_source": feature_source if uses_features else None,
        "feature_dim": int(features.shape[1]) if uses_features else None,
        "teacher_path": str(teacher_path) if uses_teacher else None,
        "hparams": hparams_record,
        "store": str(store_path),
        "store_source": store_source,
        "device": str(torch_device),
        PROVENANCE_KEY: provenance(seeds={"seed": int(seed)}, config={
            "method": method, "ratio": None if ratio is None else float(ratio),
            "pairs": None if pairs is None else int(pairs), "n_splits": int(n_splits),
            "feature_source": feature_source if uses_features else None, "hparams": hparams_record}),
        "seconds": {
            "features": round(feature_seconds, 3),
            "selection": round(select_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    with atomic_open(out_path) as handle:
        np.save(handle, indices)
    logger.info("%s: wrote %d indices to %s (%.1f s)", method, indices.size, out_path, record["seconds"]["total"])
    return out_path
