"""Sliding-window cropping of HR/LR image pairs into the HDF5 patch store.

Window positions per side follow BasicSR's ``extract_subimages.py``: ``0, step, 2*step, ...`` while
the window fits, plus one last window flush with the far edge when more than ``thresh`` pixels
would otherwise be left uncovered. With HR 256 / step 128 / thresh 0 every DIV2K training image
gives 10-15 windows per side; the 800 images give the paper's 120,765 pairs.

LR patches are cut from the LR *image* (the provided ``<stem>x4.png`` or our MATLAB ``imresize`` of
the whole mod-cropped HR image) at ``origin / scale``, so each LR patch is exactly what the LR image
holds under its HR patch (not a resize of the HR patch, whose borders would differ).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from idc.atomic import remove_stale_temporaries
from idc.data.images import image_size, list_images, read_image
from idc.data.imresize import imresize_uint8, modcrop
from idc.data.store import (
    WRITE_MARGIN,
    PatchStoreWriter,
    check_free_space,
    check_replaceable_store,
    write_patch_store,
)
from idc.progress import ProgressLog
from idc.runloop import STOP_SIGNALS, RunInterrupted

__all__ = [
    "DIV2K_TRAIN_PATCHES",
    "crop_positions",
    "count_patches",
    "crop_image_pair",
    "find_lr_file",
    "image_patch_counts",
    "crop_images_to_store",
    "check_output_path",
    "CropInterrupted",
]

logger = logging.getLogger(__name__)

# DIV2K train HR (800 images), HR crop 256, step 128, thresh 0: the paper's number of pairs.
DIV2K_TRAIN_PATCHES = 120_765
LOG_EVERY_S = 30.0  # progress log period
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal to the caller when its parent ends


def crop_positions(length: int, crop: int, step: int, thresh: int = 0) -> list[int]:
    """Start offsets of the windows along one side (BasicSR rule).

    ``range(0, length - crop + 1, step)``, plus ``length - crop`` when the last regular window
    leaves more than ``thresh`` pixels uncovered. Raises ValueError when ``length < crop``.
    """
    if crop < 1 or step < 1 or thresh < 0:
        raise ValueError(
            f"crop_positions: need crop >= 1, step >= 1, thresh >= 0 (got {crop}, {step}, {thresh})"
        )
    if length < crop:
        raise ValueError(f"crop_positions: side of {length} px is smaller than the crop {crop}")
    positions = list(range(0, length - crop + 1, step))
    if length - (positions[-1] + crop) > thresh:
        positions.append(length - crop)
    return positions


def count_patches(h: int, w: int, crop: int, step: int, thresh: int = 0) -> int:
    """Number of windows in an ``h`` x ``w`` image (e.g. 1356x2040 at 256/128 -> 10 x 15 = 150)."""
    return len(crop_positions(h, crop, step, thresh)) * len(crop_positions(w, crop, step, thresh))


def find_lr_file(lr_dir: Path, hr_path: Path, scale: int) -> Path:
    """LR file for ``hr_path`` in ``lr_dir``: ``<stem>x<scale><suffix>`` (DIV2K and benchmark
    naming, suffix of the HR file or .png), else ``<stem><suffix>``; FileNotFoundError otherwise."""
    stem = hr_path.stem
    candidates = [
        lr_dir / f"{stem}x{scale}{hr_path.suffix}",
        lr_dir / f"{stem}x{scale}.png",
        lr_dir / hr_path.name,
    ]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"no LR file for {hr_path.name} in {lr_dir} (expected {candidates[0].name})"
    )


@dataclass(frozen=True)
class _Job:
    hr_path: Path
    lr_path: Path | None
    scale: int
    hr_size: int
    step: int
    thresh: int
    image_id: int
    spool_dir: Path | None  # where a worker writes its compressed patches (None: return arrays)


def crop_image_pair(
    hr: np.ndarray, lr: np.ndarray | None, *, scale: int, hr_size: int, step: int, thresh: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop one image into aligned patch pairs.

    ``hr`` uint8 HxWx3 (mod-cropped here to ``scale``); ``lr`` uint8 (H/scale)x(W/scale)x3 or None
    (then MATLAB ``imresize`` of the whole HR image). Returns ``(lr_patches, hr_patches, origins)``
    with origins (n, 2) = (row, col) of each HR window, row-major order.
    """
    hr = modcrop(hr, scale)
    if lr is None:
        lr = imresize_uint8(hr, 1.0 / scale)
    if lr.shape != (hr.shape[0] // scale, hr.shape[1] // scale, 3):
        raise ValueError(
            f"LR image {lr.shape} is not the mod-cropped HR {hr.shape} divided by {scale}"
        )
    rows = crop_positions(hr.shape[0], hr_size, step, thresh)
    cols = crop_positions(hr.shape[1], hr_size, step, thresh)
    lr_size = hr_size // scale
    n = len(rows) * len(cols)
    hr_out = np.empty((n, hr_size, hr_size, 3), np.uint8)
    lr_out = np.empty((n, lr_size, lr_size, 3), np.uint8)
    origins = np.empty((n, 2), np.int64)
    k = 0
    for r in rows:
        for c in cols:
            hr_out[k] = hr[r : r + hr_size, c : c + hr_size]
            lr_out[k] = lr[r // scale : r // scale + lr_size, c // scale : c // scale + lr_size]
            origins[k] = (r, c)
            k += 1
    return lr_out, hr_out, origins


def _crop_job(job: _Job) -> tuple[np.ndarray, np.ndarray, np.ndarray] | Path:
    """Worker: read one HR (and LR) image and crop it. With a spool folder the patches are
    written (and so compressed, in this worker) to a small store there, and its path returned."""
    hr = read_image(job.hr_path)
    lr = read_image(job.lr_path) if job.lr_path is not None else None
    try:
        lr_p, hr_p, origins = crop_image_pair(
            hr, lr, scale=job.scale, hr_size=job.hr_size, step=job.step, thresh=job.thresh
        )
    except ValueError as err:
        raise ValueError(f"{job.hr_path}: {err}") from None
    if job.spool_dir is None:
        return lr_p, hr_p, origins
    return write_patch_store(
        job.spool_dir / f"{job.image_id:06d}.h5",
        lr_p,
        hr_p,
        job.image_id,
        origins,
        scale=job.scale,
        hr_size=job.hr_size,
        step=job.step,
        source=str(job.hr_path),
        seed=None,
    )


class CropInterrupted(RunInterrupted):
    """A stop signal ended the cropping; the workers were stopped and nothing was written."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"cropping stopped by {signal.Signals(signum).name}; nothing was written, rerun to crop")
        self.signum = int(signum)


def _die_with_parent(parent_pid: int) -> None:
    """Pool-worker initialiser. Stop signals are ignored (a signal sent to the whole process group
    reaches the parent, which cancels the pending jobs and lets the running ones finish: no worker
    dies mid-job under it), and the worker is killed when its parent ends, however that ends
    (Linux prctl; elsewhere the parent's own stop handling must do)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (AttributeError, OSError):  # no prctl in this libc: the parent's handler remains
            pass
    if os.getppid() != parent_pid:  # the parent ended before the request took effect
        os._exit(1)


def _process_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker pool for cropping, or None for in-process work.

    Fork where the platform has it: the children inherit the imported modules without
    re-executing the caller's main script (which a Snakemake ``script:`` would be under spawn).
    The workers end with their parent (`_die_with_parent`): none is left orphaned.
    """
    if workers <= 1:
        return None
    methods = mp.get_all_start_methods()
    context = mp.get_context("fork" if "fork" in methods else methods[0])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGTERM/SIGUSR1 raise CropInterrupted in the main thread while cropping, so the pool is shut
    down, the spool and the temporary store removed, and the command ends with one line (the
    default action would end the process at once, its workers left running). Elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        if not received:  # once: a second signal must not break off the clean-up of the first
            received.append(signum)
            raise CropInterrupted(signum)

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _ordered_map(
    func: Callable[[Any], Any], items: list[Any], pool: ProcessPoolExecutor | None, window: int
) -> Iterator[Any]:
    """``map`` in input order over ``pool``, at most ``window`` results in flight (bounded
    memory: finished patches are written before more images are decoded).

    The first ``window`` jobs are submitted before this returns, so the pool's processes exist
    before the caller opens its output file (no HDF5 handle is inherited by a forked worker).
    """
    if pool is None:
        return map(func, items)
    it: Iterator[Any] = iter(items)
    pending: deque[Future[Any]] = deque(pool.submit(func, x) for x in itertools.islice(it, window))

    def results() -> Iterator[Any]:
        for item in it:
            yield pending.popleft().result()
            pending.append(pool.submit(func, item))
        while pending:
            yield pending.popleft().result()

    return results()


def _image_windows(
    hr_path: Path, *, scale: int, hr_size: int, step: int, thresh: int
) -> tuple[int, int, int]:
    """(mod-cropped height, width, number of windows) of one image, from its header."""
    h, w = image_size(hr_path)
    h_mod, w_mod = h - h % scale, w - w % scale
    if h_mod < hr_size or w_mod < hr_size:
        raise ValueError(f"image {hr_path} ({h}x{w}) is smaller than the crop {hr_size}x{hr_size}")
    return h_mod, w_mod, count_patches(h_mod, w_mod, hr_size, step, thresh)


def image_patch_counts(
    hr_files: list[Path], *, scale: int, hr_size: int, step: int, thresh: int = 0
) -> list[int]:
    """Patches each image will give (headers only): lets the workflow check its ratios before
    the crop job runs."""
    return [
        _image_windows(p, scale=scale, hr_size=hr_size, step=step, thresh=thresh)[2]
        for p in hr_files
    ]


def _validate_inputs(
    hr_files: list[Path], lr_dir: Path | None, *, scale: int, hr_size: int, step: int, thresh: int
) -> tuple[list[Path | None], int]:
    """Header-only checks of every image before any pixel is decoded; returns LR paths and the
    total number of patches."""
    lr_files: list[Path | None] = []
    total = 0
    for hr_path in hr_files:
        h_mod, w_mod, n = _image_windows(hr_path, scale=scale, hr_size=hr_size, step=step, thresh=thresh)
        total += n
        if lr_dir is None:
            lr_files.append(None)
            continue
        lr_path = find_lr_file(lr_dir, hr_path, scale)
        lh, lw = image_size(lr_path)
        if (lh, lw) != (h_mod // scale, w_mod // scale):
            raise ValueError(
                f"LR image {lr_path} is {lh}x{lw}, expected {h_mod // scale}x{w_mod // scale} for {hr_path.name} at x{scale}"
            )
        lr_files.append(lr_path)
    return lr_files, total


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_path(
    out_path: str | os.PathLike,
    *,
    input_dirs: Sequence[Path | None],
    input_files: Sequence[Path | None] = (),
) -> None:
    """ValueError naming the store unless ``out_path`` may take a new store: it must lie outside
    every input folder (a store written there would replace an image or mix into the images a
    later run lists), differ from every input file, and hold nothing a user made
    (`check_replaceable_store`). Cheap: runs before any image is read."""
    out_path = Path(out_path)
    resolved = out_path.resolve()
    for folder in input_dirs:
        if folder is not None and _is_within(resolved, Path(folder).resolve()):
            raise ValueError(
                f"patch store {out_path}: the output path is inside the input folder {folder} "
                "(choose a path outside the inputs)"
            )
    for file in input_files:
        if file is not None and resolved == Path(file).resolve():
            raise ValueError(f"patch store {out_path}: the output path is the input file {file}")
    check_replaceable_store(out_path)


def _check_crop_settings(*, scale: int, hr_size: int, step: int, thresh: int, lr_dir: Path | None) -> None:
    """Integers in range, windows on whole LR pixels, an LR folder that exists."""
    for key, value, least in (("scale", scale, 1), ("hr_size", hr_size, 1), ("step", step, 1), ("thresh", thresh, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"crop: {key} must be an integer >= {least}, got {value!r}")
    if hr_size % scale or step % scale:
        raise ValueError(f"hr_size {hr_size} and step {step} must be multiples of scale {scale}")
    if lr_dir is not None and not lr_dir.is_dir():
        raise FileNotFoundError(f"LR folder not found: {lr_dir}")


def _crop_attrs(hr_dir: Path, lr_dir: Path | None, *, hr_size: int, scale: int, thresh: int,
                n_images: int) -> dict[str, object]:
    """The store attributes that say how its pairs were cropped and where the LR side comes from."""
    return {
        "thresh": int(thresh),
        "lr_size": hr_size // scale,
        "lr_source": f"files in {lr_dir}" if lr_dir is not None else "MATLAB bicubic imresize of the HR image",
        "hr_dir": str(hr_dir),
        "n_images": n_images,
    }


def crop_images_to_store(
    hr_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    scale: int = 4,
    hr_size: int = 256,
    step: int = 128,
    thresh: int = 0,
    lr_dir: str | os.PathLike | None = None,
    seed: int | None = 0,
    workers: int = 2,
    source: str = "",
    expected_patches: int | None = None,
    hr_files: list[Path] | None = None,
) -> Path:
    """Crop every image of ``hr_dir`` into a patch store at ``out_path`` (written atomically).

    Image id = position of the file in sorted name order; the names are stored in the dataset
    ``image_name``. LR patches come from ``lr_dir`` (``<stem>x<scale>.png``) when given, else from
    MATLAB ``imresize`` of the whole HR image. ``hr_size`` and ``step`` must be multiples of
    ``scale`` so LR windows fall on whole pixels. All image headers are validated first (missing,
    non-image, 16-bit, too small, LR size mismatch: one-line error); ``expected_patches``, when
    given, must equal the computed total (e.g. ``DIV2K_TRAIN_PATCHES``). ``seed`` is recorded
    only (cropping is deterministic). ``workers`` processes decode and crop in parallel.
    ``hr_files``, when given, replaces the folder listing (a subset or order from a meta-info
    file); image ids then follow that list.
    """
    hr_dir = Path(hr_dir)
    out_path = Path(out_path)
    lr_dir_p = Path(lr_dir) if lr_dir is not None else None
    _check_crop_settings(scale=scale, hr_size=hr_size, step=step, thresh=thresh, lr_dir=lr_dir_p)
    hr_files = list_images(hr_dir) if hr_files is None else [Path(p) for p in hr_files]
    check_output_path(out_path, input_dirs=[hr_dir, lr_dir_p], input_files=hr_files)
    lr_files, total = _validate_inputs(
        hr_files, lr_dir_p, scale=scale, hr_size=hr_size, step=step, thresh=thresh
    )
    if expected_patches is not None and total != expected_patches:
        raise ValueError(
            f"{hr_dir}: {len(hr_files)} images give {total} patches at {hr_size}/{step}, expected {expected_patches}"
        )
    logger.info(
        "cropping %d images from %s into %d patch pairs (HR %d, step %d, x%d, LR from %s, %d workers)",
        len(hr_files),
        hr_dir,
        total,
        hr_size,
        step,
        scale,
        lr_dir_p or "imresize",
        workers,
    )
    # With several workers, compression (the costliest part of writing) happens in the workers:
    # they spool small compressed stores next to the output, the writer copies their chunks.
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path)
    # Uncompressed size as the bound: LZF keeps 86-87 % of real photos, noise not at all.
    lr_size = hr_size // scale
    check_free_space(out_path, total * 3 * (hr_size**2 + lr_size**2) + WRITE_MARGIN)
    spool = (
        Path(tempfile.mkdtemp(prefix=f".{out_path.name}.spool-{os.getpid()}-", dir=out_path.parent))
        if workers > 1
        else None
    )
    jobs = [
        _Job(h, l, scale, hr_size, step, thresh, i, spool)
        for i, (h, l) in enumerate(zip(hr_files, lr_files))
    ]
    extra = _crop_attrs(hr_dir, lr_dir_p, hr_size=hr_size, scale=scale, thresh=thresh, n_images=len(hr_files))
    try:
        _write_store(
            out_path,
            jobs,
            workers,
            total,
            store_attrs=dict(
                scale=scale, hr_size=hr_size, step=step, source=source or str(hr_dir), seed=seed, extra_attrs=extra
            ),
            names=[p.name for p in hr_files],
        )
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    logger.info("wrote %d patch pairs from %d images to %s", total, len(hr_files), out_path)
    return out_path


def _write_store(
    out_path: Path,
    jobs: list[_Job],
    workers: int,
    total: int,
    *,
    store_attrs: dict[str, Any],
    names: list[str],
) -> None:
    """Run the crop jobs and write their patches, in image order, into one store
    (`store_attrs`: the PatchStoreWriter keyword arguments)."""
    with _stop_signals_raise():
        pool = _process_pool(workers)
        try:
            results = _ordered_map(_crop_job, jobs, pool, window=2 * workers)
            _write_results(out_path, results, len(jobs), total, store_attrs=store_attrs, names=names)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _write_results(
    out_path: Path,
    results: Iterator[Any],
    n_jobs: int,
    total: int,
    *,
    store_attrs: dict[str, Any],
    names: list[str],
) -> None:
    with PatchStoreWriter(out_path, **store_attrs) as writer:
        writer.write_array("image_name", names)
        # Progress: a bar on a terminal; log lines with an ETA at a steady rate for job logs.
        progress = ProgressLog(logger, "crop", total, unit="patch pairs", every_s=LOG_EVERY_S)
        with tqdm(total=n_jobs, desc="crop", unit="img", mininterval=2.0, disable=None) as bar:
            for image_id, result in enumerate(results):
                before = len(writer)
                if isinstance(result, Path):
                    writer.append_store(result)
                    result.unlink()
                else:
                    writer.append(*result[:2], image_id, result[2])
                bar.update(1)
                progress.update(len(writer) - before)
        if len(writer) != total:  # header sizes and decoded sizes disagree: never keep such a store
            raise ValueError(
                f"{out_path}: cropped {len(writer)} patches, headers announced {total}"
            )
