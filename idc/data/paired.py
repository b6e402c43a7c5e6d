"""Paired PNG folders, the layout SR training code reads (BasicSR's ``PairedImageDataset``, and
the MambaIR, KAIR and SwinIR training code built on the same convention): export of any dataset
of a run, and import of anyone's paired folders as a dataset of the workflow.

Export layout (``out/``)::

    HR/<name>.png                 the HR patch
    LR_bicubic/X<s>/<name>x<s>.png  its LR patch (for IDC: the synthetic LR patch itself)
    meta_info.txt                 one line per pair, ``<name>.png (H,W,3)``, in dataset order
    dataset_card.yaml             what the set is, how it was made, SHA-256 of every file above

``meta_info.txt`` is BasicSR's meta-info format (``basicsr/data/data_util.py``,
``paired_paths_from_meta_info_file``: the first space-separated field of each line is the GT file
name; the LR name is ``filename_tmpl.format(stem) + ext`` in the LR folder, with
``filename_tmpl: '{}x4'`` here). Names never contain spaces (that reader splits on them) and
start with a zero-padded position, so name order is dataset order for readers that sort.

Import reads ``HR/`` (+ an optional LR folder, ``<stem>x<s>.<ext>`` or the same name; LR made by
our MATLAB ``imresize`` when absent) and an optional ``meta_info.txt`` that picks and orders the
pairs, checks every pair from the headers first (unpaired names, wrong scale, non-images: one
line naming the file), then crops the pairs into a patch store like any training set.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from idc.atomic import staging_folder
from idc.data.download import sha256_file
from idc.data.images import image_size, list_images, write_png
from idc.data.store import PatchStore
from idc.progress import ProgressLog

__all__ = [
    "CARD_NAME",
    "META_INFO_NAME",
    "LICENCES",
    "export_paired",
    "import_paired",
    "licence_of",
    "pair_names",
    "paired_files",
    "read_meta_info",
    "safe_name",
]

logger = logging.getLogger(__name__)

CARD_NAME = "dataset_card.yaml"
META_INFO_NAME = "meta_info.txt"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# PNG level 3: BasicSR's own sub-image extraction setting; level 6+ costs ~2x the time for ~3 %.
PNG_LEVEL = 3
_CHUNK = 64  # pairs read from the store per batch


# Licence line of a card, by training source (checked against each source's own terms).
LICENCES = {
    "div2k": "DIV2K: for academic research only (terms on the DIV2K web page); the derived "
             "patches inherit these terms",
    "demo": "scikit-image sample photos (skimage.data): per-image licences in scikit-image's "
            "data/README.txt",
    "folder": "unknown: set export.licence",
}


def licence_of(source: str) -> str:
    return LICENCES.get(source, LICENCES["folder"])


def safe_name(text: str) -> str:
    """A file-name fragment of letters, digits, '-', '_', '.' only, never starting with '.'."""
    name = _UNSAFE.sub("-", str(text)).strip("-") or "x"
    return name.lstrip(".") or "x"


def pair_names(image_id: np.ndarray, origin: np.ndarray, image_names: list[str] | None) -> list[str]:
    """``<position>_<source image>[_r<row>_c<col>|_syn]`` per pair: sortable, traceable."""
    n = len(image_id)
    width = max(6, len(str(max(n - 1, 0))))
    names = []
    for k, (img, org) in enumerate(zip(image_id.tolist(), origin.tolist())):
        if image_names is not None and 0 <= img < len(image_names):
            stem = safe_name(Path(image_names[img]).stem)
        else:
            stem = f"img{img}"
        where = "syn" if org[0] < 0 else f"r{org[0]}_c{org[1]}"
        names.append(f"{k:0{width}d}_{stem}_{where}")
    return names


def _software() -> dict[str, str]:
    import h5py
    import PIL

    import idc

    versions = {"idc-workflow": idc.__version__, "python": platform.python_version(),
                "numpy": np.__version__, "h5py": h5py.__version__, "pillow": PIL.__version__}
    try:
        import torch

        versions["torch"] = str(torch.__version__)
    except ImportError:  # the export itself does not need torch
        pass
    return versions


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished folder into place; an older export is removed only after that."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_paired(
    out_dir: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    indices_path: str | os.PathLike | None = None,
    scale: int,
    card: dict[str, Any] | None = None,
    memorisation_path: str | os.PathLike | None = None,
    names_from: str | os.PathLike | None = None,
) -> Path:
    """Write the pairs of a patch store (all, or the rows of an index file: a baseline
    selection) as paired PNG folders with ``meta_info.txt`` and a dataset card.

    ``card`` holds what only the caller knows (method, ratio, source and licence, config slice,
    seeds); the card adds counts, sizes, the store's provenance attrs, software versions, the
    memorisation summary (synthetic sets) and the SHA-256 of every file. ``names_from`` is a
    store whose image names name the pairs when the exported store has none of its own
    (synthetic stores keep the real store's image ids).
    The folder is written under a temporary name and renamed when complete.
    """
    from idc.sr.data import load_indices

    out_dir = Path(out_dir)
    store = PatchStore(store_path)
    if store.scale != scale:
        raise ValueError(f"patch store {store_path} has scale {store.scale}, the export asks for x{scale}")
    n_total = len(store)
    indices = load_indices(indices_path, n_total) if indices_path else np.arange(n_total, dtype=np.int64)
    memorisation = None
    if memorisation_path:
        with open(memorisation_path) as fh:
            memorisation = json.load(fh).get("overall")
    image_names = store.image_names
    if image_names is None and names_from is not None:
        with PatchStore(names_from) as named:
            image_names = named.image_names
    names = pair_names(store.image_id[indices], store.origin[indices], image_names)
    hr_rel, lr_rel = Path("HR"), Path("LR_bicubic") / f"X{scale}"
    tmp = staging_folder(out_dir)
    try:
        (tmp / hr_rel).mkdir(parents=True)
        (tmp / lr_rel).mkdir(parents=True)
        progress = ProgressLog(logger, f"export {out_dir.name}", len(indices), unit="pairs")
        files: dict[str, str] = {}
        for start in range(0, len(indices), _CHUNK):
            batch = indices[start:start + _CHUNK]
            lr, hr = store.read(batch)
            for name, lr_img, hr_img in zip(names[start:start + _CHUNK], lr, hr):
                for rel, img in ((hr_rel / f"{name}.png", hr_img), (lr_rel / f"{name}x{scale}.png", lr_img)):
                    write_png(tmp / rel, img, compress_level=PNG_LEVEL)
                    files[rel.as_posix()] = sha256_file(tmp / rel)
            progress.update(len(batch))
        h, w = store.hr_shape[:2]
        meta = "".join(f"{name}.png ({h},{w},3)\n" for name in names)
        (tmp / META_INFO_NAME).write_text(meta)
        files[META_INFO_NAME] = sha256_file(tmp / META_INFO_NAME)
        card = dict(card or {})
        made_by = {k: card.pop(k) for k in ("config", "seeds") if k in card}
        full_card = {
            **card,
            "pairs": int(len(indices)),
            "scale": int(scale),
            "hr_size": [int(h), int(w)],
            "lr_size": [int(store.lr_shape[0]), int(store.lr_shape[1])],
            "memorisation": memorisation,
            "layout": {
                "hr": hr_rel.as_posix(),
                "lr": lr_rel.as_posix(),
                "lr_name": f"<name>x{scale}.png",
                "meta_info": META_INFO_NAME,
                # What BasicSR's training options need to read this folder as it is.
                "basicsr": {"type": "PairedImageDataset", "dataroot_gt": hr_rel.as_posix(),
                            "dataroot_lq": lr_rel.as_posix(), "meta_info_file": META_INFO_NAME,
                            "filename_tmpl": f"{{}}x{scale}", "io_backend": {"type": "disk"}},
            },
            "store": {"path": str(store_path), "indices": str(indices_path) if indices_path else None,
                      **{k: store.attrs.get(k) for k in ("source", "created_by", "seed", "step")}},
            **made_by,
            "software": _software(),
            "sha256": files,
        }
        with open(tmp / CARD_NAME, "w") as fh:
            yaml.safe_dump(full_card, fh, sort_keys=False, width=100)
        store.close()
        _replace_dir(tmp, out_dir)
    except BaseException:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %d pairs to %s", len(indices), out_dir)
    return out_dir


# ---------------------------------------------------------------- import
def read_meta_info(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int] | None]]:
    """``[(gt file name, (h, w, c) or None)]`` from a BasicSR meta-info file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"meta-info file not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.strip().split(" ")
        if not fields[0]:
            continue
        shape = None
        if len(fields) > 1:
            m = re.fullmatch(r"\((\d+),(\d+),(\d+)\)", "".join(fields[1:]))
            if not m:
                raise ValueError(f"{path} line {number}: expected '<name> (h,w,c)', got {line.strip()!r}")
            shape = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        entries.append((fields[0], shape))
    if not entries:
        raise ValueError(f"meta-info file {path} lists no images")
    return entries


def _lr_partner(hr: Path, lr_by_name: dict[str, Path], scale: int) -> Path | None:
    for name in (f"{hr.stem}x{scale}{hr.suffix}", f"{hr.stem}x{scale}.png", hr.name):
        if name in lr_by_name:
            return lr_by_name[name]
    return None


def paired_files(
    hr_dir: str | os.PathLike,
    lr_dir: str | os.PathLike | None = None,
    meta_info: str | os.PathLike | None = None,
    *,
    scale: int,
) -> tuple[list[Path], list[Path] | None]:
    """HR files (meta-info order, else name order) and their LR partners (None: no LR folder).

    Checked from file names and headers only: every listed HR file exists and is an 8-bit image,
    every HR file has an LR partner and (without a meta-info file, which may pick a subset)
    every LR file an HR partner, and each LR image is its mod-cropped HR divided by ``scale``.
    """
    hr_dir = Path(hr_dir)
    all_hr = list_images(hr_dir)
    if meta_info is not None:
        by_name = {p.name: p for p in all_hr}
        hr_files = []
        for name, shape in read_meta_info(meta_info):
            if name not in by_name:
                raise ValueError(f"{meta_info}: {name} is not an image in {hr_dir}")
            if shape is not None:
                h, w = image_size(by_name[name])
                if (h, w) != shape[:2]:
                    raise ValueError(f"{meta_info}: {name} is listed as {shape[0]}x{shape[1]}, the file is {h}x{w}")
            hr_files.append(by_name[name])
    else:
        hr_files = all_hr
    for p in hr_files:
        image_size(p)  # refuses non-images and 16-bit files before any pixel is decoded
    if lr_dir is None:
        return hr_files, None
    lr_dir = Path(lr_dir)
    lr_by_name = {p.name: p for p in list_images(lr_dir)}
    lr_files = []
    for hr in hr_files:
        lr = _lr_partner(hr, lr_by_name, scale)
        if lr is None:
            raise ValueError(f"HR image {hr} has no LR partner in {lr_dir} (expected {hr.stem}x{scale}{hr.suffix})")
        h, w = image_size(hr)
        lh, lw = image_size(lr)
        if (lh, lw) != ((h - h % scale) // scale, (w - w % scale) // scale):
            raise ValueError(f"LR image {lr} is {lh}x{lw}, not HR {hr.name} ({h}x{w}) divided by {scale}: wrong scale?")
        lr_files.append(lr)
    if meta_info is None:
        orphans = sorted(set(lr_by_name.values()) - set(lr_files))
        if orphans:
            raise ValueError(f"LR image {orphans[0]} has no HR partner in {hr_dir} ({len(orphans)} unpaired LR files)")
    return hr_files, lr_files


def import_paired(
    hr_dir: str | os.PathLike,
    out_store: str | os.PathLike,
    *,
    scale: int,
    hr_size: int,
    step: int,
    lr_dir: str | os.PathLike | None = None,
    meta_info: str | os.PathLike | None = None,
    workers: int = 1,
    source: str = "",
) -> Path:
    """Paired folders -> patch store: pairs checked first (:func:`paired_files`), then cropped
    with windows of ``hr_size``/``step`` (a folder of ``hr_size`` patches, such as an export of a
    run with the same crop size, gives one patch per pair, unchanged)."""
    from idc.data.crop import crop_images_to_store

    hr_files, _ = paired_files(hr_dir, lr_dir, meta_info, scale=scale)
    return crop_images_to_store(
        hr_dir, out_store, scale=scale, hr_size=hr_size, step=step, thresh=0,
        lr_dir=lr_dir, seed=None, workers=workers, source=source or f"folder:{hr_dir}",
        hr_files=hr_files,
    )
