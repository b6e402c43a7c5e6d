"""File-level entry points of the condensation stage (what the workflow rules call).

- `condense_image`: one instance from the real patch store -> synthetic LR patches (.npy) + log;
  its number of synthetic patches is its share of the whole store (`synthetic_allocation`).
- `upsample_and_assemble`: all instances' synthetic LR patches -> HR by the teacher -> one store.
- `memorisation_report`: nearest-real PSNR of every synthetic patch, per instance (JSON).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idc.atomic import atomic_open, atomic_write_text
from idc.condense.condenser import condense_instances
from idc.condense.config import CondenseConfig
from idc.device import resolve_device
from idc.progress import ProgressLog
from idc.runloop import derive_seed

logger = logging.getLogger(__name__)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False))
    return path


def save_synthetic(path: str | os.PathLike, synthetic: torch.Tensor) -> Path:
    """(n, 3, h, w) float32 in [0,1] as .npy, atomically."""
    path = Path(path)
    arr = np.ascontiguousarray(synthetic.detach().cpu().float().numpy())
    with atomic_open(path) as fh:
        np.save(fh, arr)
    return path


def snapshot_path(synthetic_path: str | os.PathLike) -> Path:
    """Where the progress snapshots of an instance's synthetic patches lie: beside the .npy."""
    path = Path(synthetic_path)
    return path.with_name(f"{path.stem}.snapshots.npz")


def save_snapshots(path: str | os.PathLike, snapshots: dict[int, np.ndarray],
                   patch_shape: tuple[int, int] = (0, 0)) -> Path:
    """step -> (k, h, w, 3) uint8 synthetic patches, as one .npz (`steps` and `patches`); with no
    snapshots (switched off) an empty file of patch size `patch_shape` (the workflow's output)."""
    path = Path(path)
    steps = sorted(snapshots)
    patches = (np.stack([snapshots[s] for s in steps]) if steps
               else np.zeros((0, 0, *patch_shape, 3), np.uint8))
    arrays = {"steps": np.asarray(steps, dtype=np.int64), "patches": patches.astype(np.uint8)}
    with atomic_open(path) as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_snapshots(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(steps (S,), patches (S, k, h, w, 3) uint8) written by `save_snapshots`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"condensation snapshots not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            steps, patches = data["steps"], data["patches"]
    except Exception as err:
        raise ValueError(f"condensation snapshots {path} are unreadable ({err})") from err
    if patches.ndim != 5 or patches.dtype != np.uint8 or len(steps) != len(patches):
        raise ValueError(f"condensation snapshots {path} must hold steps (S,) and uint8 patches (S,k,h,w,3)")
    return steps, patches


def load_synthetic(path: str | os.PathLike) -> torch.Tensor:
    """Synthetic LR patches written by `save_synthetic`: float32 (n,3,h,w), square, every value
    finite and in [0, 1]; ValueError naming the file otherwise (a NaN would become black patches,
    an out-of-range value a clipped one, silently)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"synthetic patches not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"synthetic patches {path} are unreadable ({err})") from err
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.dtype != np.float32:
        raise ValueError(f"synthetic patches {path} must be float32 (n,3,h,w), got {arr.dtype} {arr.shape}")
    if arr.shape[2] != arr.shape[3]:
        raise ValueError(f"synthetic patches {path} must be square, got {arr.shape[2]}x{arr.shape[3]}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"synthetic patches {path} hold {int((~np.isfinite(arr)).sum())} non-finite values")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"synthetic patches {path} hold values outside [0, 1] "
                         f"(min {float(arr.min()):.4g}, max {float(arr.max()):.4g})")
    return torch.from_numpy(arr)


def allotted_count(synthetic_path: str | os.PathLike, image_id: int) -> int | None:
    """The number of synthetic patches `condense_image` allotted to `image_id` (its budget share),
    from the instance log written beside the .npy; None when there is no such log. ValueError
    when the log is unreadable or belongs to another image."""
    log_path = Path(synthetic_path).with_suffix(".json")
    if not log_path.is_file():
        return None
    try:
        log = json.loads(log_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"condensation log {log_path} is unreadable ({err})") from None
    if not isinstance(log, dict) or not isinstance(log.get("n_synthetic"), int):
        return None
    if "image_id" in log and log["image_id"] != int(image_id):
        raise ValueError(f"synthetic patches {synthetic_path}: its log {log_path} is for image {log['image_id']}, "
                         f"not image {image_id}")
    return log["n_synthetic"]


def check_synthetic_set(synthetic: Sequence[torch.Tensor], paths: Sequence[str | os.PathLike],
                        image_ids: Sequence[int], *, real_store=None) -> None:
    """Before any up-sampling: every file's patches have one size (the real store's LR patch
    size when `real_store` is given), each file holds the count its log allotted, and never more
    than its image has real patches (the ratio is at most 1). ValueError naming the file."""
    sizes = Counter(int(syn.shape[2]) for syn in synthetic if syn.shape[0])
    expected_size = int(real_store.lr_size) if real_store is not None else next(iter(sizes.most_common(1)), (None,))[0]
    for syn, path, image_id in zip(synthetic, paths, image_ids):
        n = int(syn.shape[0])
        if n and int(syn.shape[2]) != expected_size:
            what = f"the LR patch size of {real_store.path}" if real_store is not None else "that of the other files"
            raise ValueError(f"synthetic patches {path} are {syn.shape[2]}x{syn.shape[3]}, "
                             f"not {expected_size}x{expected_size} ({what})")
        allotted = allotted_count(path, image_id)
        if allotted is not None and n != allotted:
            raise ValueError(f"synthetic patches {path} hold {n} patches, but image {image_id} was allotted {allotted}")
        if real_store is not None:
            n_real = len(real_store.indices_of_image(int(image_id)))
            if n > n_real:
                raise ValueError(f"synthetic patches {path} hold {n} patches, more than the {n_real} real patches "
                                 f"of image {image_id} in {real_store.path}")


def config_from_dict(cfg: dict[str, Any] | CondenseConfig) -> CondenseConfig:
    """A CondenseConfig from a dict that may name a `variant` (its changes apply on top of the
    dict's other settings, as in the workflow)."""
    if isinstance(cfg, CondenseConfig):
        return cfg
    d = dict(cfg or {})
    variant = d.pop("variant", None)
    return CondenseConfig.from_dict(d, variant=variant)


def synthetic_allocation(store, config: CondenseConfig) -> dict[int, int]:
    """image id -> synthetic patches, under `config.budget`, from every image's real patch count
    in the store (`PatchStore` or path). Each per-image job computes the whole allocation and
    takes its own share, so the jobs agree without talking to each other; under "equal" the
    total is the baselines' floor(r N) (idc/condense/budget.py)."""
    from idc.data.store import PatchStore

    if not isinstance(store, PatchStore):
        store = PatchStore(store)
    ids, counts = np.unique(store.image_id, return_counts=True)  # ascending ids: the tie-break order
    return dict(zip(ids.tolist(), config.synthetic_counts(counts)))


def _empty_instance_log(config: CondenseConfig, n_real: int) -> dict[str, Any]:
    """Log of an image whose share is 0: nothing is optimised, the output holds no patch."""
    return {"n_real": int(n_real), "n_synthetic": 0, "steps": [], "assignment_events": [],
            "resumed_from_step": None, "seconds": 0.0, "device": None, "config": config.to_dict(),
            "diagnostics": {}, "stopping": {"rule": "skipped", "end_step": 0},
            "skipped": (f"budget {config.budget!r}: r N_c = {config.ratio} x {n_real} < 1 and its remainder "
                        "is not among the largest that take the leftover patches, so this image gets 0 "
                        "synthetic patches; no optimisation ran")}


def default_resume_path(out_path: Path) -> Path:
    """Outside the output file (Snakemake deletes failed outputs): a hidden sibling folder."""
    return out_path.parent / ".condense-resume" / f"{out_path.name}.ckpt"


def condense_image(*, store_path: str | os.PathLike, image_id: int, extractor_path: str | os.PathLike,
                   out_path: str | os.PathLike, log_path: str | os.PathLike,
                   cfg: CondenseConfig | dict[str, Any], seed: int, device: str = "auto",
                   resume_dir: str | os.PathLike | None = None, progress: bool = False) -> Path:
    """Condense the LR patches of `image_id` in the store; write `out_path` (.npy) and `log_path`.
    `cfg`: the settings (the workflow's job passes them made once; a dict may name a `variant`).

    The instance seed is derived from (`seed`, `image_id`) so instances use independent streams.
    A checkpoint in `resume_dir` (default: `.condense-resume/` beside the output) is resumed. It is
    kept after success: when a packed SLURM job fails, Snakemake deletes the outputs of all its
    images, and a finished image then resumes from its last checkpoint instead of starting over
    (a checkpoint of other settings is discarded).
    """
    return condense_images(store_path=store_path, image_ids=[image_id], extractor_path=extractor_path,
                           out_paths=[out_path], log_paths=[log_path], cfg=cfg, seed=seed, device=device,
                           resume_dir=resume_dir, progress=progress)[0]


def condense_images(*, store_path: str | os.PathLike, image_ids: Sequence[int], extractor_path: str | os.PathLike,
                    out_paths: Sequence[str | os.PathLike], log_paths: Sequence[str | os.PathLike],
                    cfg: CondenseConfig | dict[str, Any], seed: int | Sequence[int], device: str = "auto",
                    resume_dir: str | os.PathLike | None = None, progress: bool = False) -> list[Path]:
    """`condense_image` for several images packed in one optimisation loop (one extractor pass
    per step over all their synthetic patches); each image gets the same files and the same
    instance seed as when condensed alone. `seed`: one base seed for every image, or one per
    image (the workflow derives each image's own, so a pack equals the single jobs it replaces up to
    the rounding of the batched extractor, amplified over the steps: docs/hpc.md).
    One checkpoint for the pack, named after the first output."""
    from idc.archs import deterministic_inference, load_model
    from idc.data.store import PatchStore

    config = config_from_dict(cfg)  # a dict's bad keys fail here, before any work
    if not (len(image_ids) == len(out_paths) == len(log_paths)) or not image_ids:
        raise ValueError(f"need equally many (>0) image ids, outputs and logs, got "
                         f"{len(image_ids)}, {len(out_paths)}, {len(log_paths)}")
    base_seeds = [int(seed)] * len(image_ids) if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    if len(base_seeds) != len(image_ids):
        raise ValueError(f"{len(base_seeds)} seeds for {len(image_ids)} images")
    store_path, extractor_path = Path(store_path), Path(extractor_path)
    out_paths, log_paths = [Path(p) for p in out_paths], [Path(p) for p in log_paths]
    for p in (store_path, extractor_path):
        if not p.is_file():
            raise FileNotFoundError(f"input not found: {p}")
    dev = resolve_device(device)
    store = PatchStore(store_path)
    for image_id in image_ids:
        if len(store.indices_of_image(int(image_id))) == 0:
            raise ValueError(f"image {image_id} has no patches in {store_path}")
    allocation = synthetic_allocation(store, config)
    budget = {"rule": config.budget, "ratio": float(config.ratio), "store_patches": len(store),
              "store_images": len(allocation), "store_total": int(sum(allocation.values()))}
    counts = [allocation[int(i)] for i in image_ids]
    seeds = [derive_seed(s, f"image-{int(i)}") for s, i in zip(base_seeds, image_ids)]
    reals = []
    for image_id, n_syn in zip(image_ids, counts):
        idx = store.indices_of_image(int(image_id))
        logger.info("condensing image %s: %d real patches -> %d synthetic on %s (budget %s: %d in the store)",
                    image_id, len(idx), n_syn, dev, config.budget, budget["store_total"])
        reals.append(torch.from_numpy(store.read_lr(idx)).permute(0, 3, 1, 2).float() / 255.0)
    work = [k for k, n_syn in enumerate(counts) if n_syn > 0]
    results: dict[int, tuple[torch.Tensor, dict[str, Any]]] = {}
    if work:
        extractor = deterministic_inference(load_model(extractor_path))
        if resume_dir is not None:
            resume_path = Path(resume_dir) / f"{out_paths[0].name}.ckpt"
        else:
            resume_path = default_resume_path(out_paths[0])
        packed = condense_instances([reals[k] for k in work], extractor, config, seeds=[seeds[k] for k in work],
                                    n_synthetic=[counts[k] for k in work], device=dev, progress=progress,
                                    resume_path=resume_path)
        results = dict(zip(work, packed))
    for k, (image_id, base_seed, instance_seed, out_path, log_path) in enumerate(
            zip(image_ids, base_seeds, seeds, out_paths, log_paths)):
        if k in results:
            synthetic, log = results[k]
        else:
            # A share of 0 is a valid result: an empty file, so the DAG keeps one output per image.
            logger.info("image %s gets no synthetic patch under budget %s; writing an empty output",
                        image_id, config.budget)
            synthetic = torch.zeros((0, *reals[k].shape[1:]), dtype=torch.float32)
            log = _empty_instance_log(config, len(reals[k]))
        log.update(image_id=int(image_id), base_seed=base_seed, instance_seed=int(instance_seed),
                   store=str(store_path), extractor=str(extractor_path), packed_with=[int(i) for i in image_ids],
                   budget=budget)
        log["seed"] = base_seed
        snapshots = log.pop("snapshots", {})
        save_synthetic(out_path, synthetic)
        save_snapshots(snapshot_path(out_path), snapshots, patch_shape=tuple(synthetic.shape[2:]))
        write_json(log_path, log)
    return out_paths


PACKED_SUFFIXES = (".npy", ".json", ".snapshots.npz")  # what a condensation writes per image


def unpack_condensed(pack_folder: str | os.PathLike, image: str, out_paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Copy one image's files (`PACKED_SUFFIXES`, in that order) out of a packed job's folder to
    the paths a single job writes, so everything downstream reads one layout whatever the
    packing. The synthetic patches are checked as every reader checks them before the copy."""
    from idc.atomic import atomic_write_bytes

    pack_folder = Path(pack_folder)
    sources = [pack_folder / f"{image}{suffix}" for suffix in PACKED_SUFFIXES]
    if len(out_paths) != len(sources):
        raise ValueError(f"{len(out_paths)} output paths for {len(sources)} files of image {image}")
    for src in sources:
        if not src.is_file():
            raise FileNotFoundError(f"packed condensation output not found: {src}")
    load_synthetic(sources[0])
    return [atomic_write_bytes(out, src.read_bytes()) for src, out in zip(sources, out_paths)]


def upsample_and_assemble(*, synthetic_paths: Sequence[str | os.PathLike], image_ids: Sequence[int],
                          upsampler_path: str | os.PathLike, out_store: str | os.PathLike, source: str,
                          seed: int, device: str = "auto", batch_size: int = 16,
                          real_store: str | os.PathLike | None = None) -> Path:
    """Up-sample every instance's synthetic LR patches with the teacher and write one patch store.
    Every file is checked first (`load_synthetic`, `check_synthetic_set`); `real_store`, when
    given, fixes the patch size and bounds each image's count by its real patches."""
    from idc.archs import deterministic_inference, load_model
    from idc.condense.assemble import assemble_store
    from idc.condense.upsample import to_uint8, upsample_patches

    if len(synthetic_paths) != len(image_ids):
        raise ValueError(f"{len(synthetic_paths)} synthetic files but {len(image_ids)} image ids")
    upsampler_path = Path(upsampler_path)
    if not upsampler_path.is_file():
        raise FileNotFoundError(f"up-sampler not found: {upsampler_path}")
    synthetic = [load_synthetic(p) for p in synthetic_paths]  # all inputs checked before the work
    if real_store is not None:
        from idc.data.store import PatchStore

        real_store = PatchStore(real_store)
    check_synthetic_set(synthetic, synthetic_paths, image_ids, real_store=real_store)
    # Images whose budget share is 0 have empty files; they contribute no patch to the store.
    empty = [int(i) for syn, i in zip(synthetic, image_ids) if syn.shape[0] == 0]
    if empty:
        logger.info("%d of %d images have no synthetic patch (budget share 0): %s", len(empty), len(image_ids),
                    ", ".join(map(str, empty)))
        kept = [(syn, i) for syn, i in zip(synthetic, image_ids) if syn.shape[0] > 0]
        if not kept:
            raise ValueError(f"none of the {len(image_ids)} synthetic files holds a patch")
        synthetic, image_ids = [syn for syn, _ in kept], [i for _, i in kept]
    dev = resolve_device(device)
    model = deterministic_inference(load_model(upsampler_path))
    lr_sets, hr_sets = [], []
    progress = ProgressLog(logger, "up-sampled", total=len(synthetic), unit="instances")
    for syn in synthetic:
        lr_sets.append(to_uint8(syn))
        hr_sets.append(upsample_patches(syn, model, batch_size=batch_size, device=dev))
        progress.update(1)
    return assemble_store(out_store, lr_sets, hr_sets, [int(i) for i in image_ids], source=source, seed=seed,
                          upsampler=str(upsampler_path))


def memorisation_report(*, synthetic_store: str | os.PathLike, real_store: str | os.PathLike,
                        out_path: str | os.PathLike) -> Path:
    """Per instance: PSNR of each synthetic LR patch to its nearest real LR patch of the same image."""
    from idc.condense.memorisation import _num, nearest_real_psnr, summarise
    from idc.data.store import PatchStore

    for p in (synthetic_store, real_store):
        if not Path(p).is_file():
            raise FileNotFoundError(f"patch store not found: {p}")
    syn_store, real = PatchStore(synthetic_store), PatchStore(real_store)
    instances = {}
    all_psnr = []
    for image_id in syn_store.image_ids.tolist():
        real_idx = real.indices_of_image(image_id)
        if len(real_idx) == 0:
            raise ValueError(f"image {image_id} of {synthetic_store} has no real patches in {real_store}")
        psnr, nearest = nearest_real_psnr(syn_store.read_lr(syn_store.indices_of_image(image_id)),
                                          real.read_lr(real_idx))
        all_psnr.append(psnr)
        instances[str(image_id)] = {**summarise(psnr), "psnr_db": [_num(v) for v in psnr],
                                    "nearest_real_index": real_idx[nearest].tolist()}
    report = {"synthetic_store": str(synthetic_store), "real_store": str(real_store),
              "overall": summarise(np.concatenate(all_psnr)), "instances": instances}
    return write_json(out_path, report)
