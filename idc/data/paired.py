"""Paired PNG folders, the layout SR training code reads (BasicSR's ``PairedImageDataset``, and
the MambaIR, KAIR and SwinIR training code built on the same convention): export of any dataset
of a run, and import of anyone's paired folders as a dataset of the workflow.

Export layout (``out/``)::

    HR/<name>.png                 the HR patch
    LR_bicubic/X<s>/<name>x<s>.png  its LR patch (for IDC: the synthetic LR patch itself);
                                  ``<name>.png`` with ``lr_names="same"`` (neosr pairs by name)
    meta_info.txt                 one line per pair, ``<name>.png (H,W,3)``, in dataset order
    train_<framework>_*.yml/.toml ready-to-run option files (BasicSR, MambaIR, traiNNer-redux,
                                  neosr: :mod:`idc.data.train_options`), paths absolute or
                                  relative to the ``root`` given at export
    dataset_card.yaml             what the set is, how it was made (with the provenance record of
                                  :mod:`idc.provenance`), SHA-256 of every file above

With ``fmt="lmdb"`` the two image folders are LMDB databases in BasicSR's layout instead
(``HR.lmdb/``, ``LR_bicubic_X<s>.lmdb/``, each ``data.mdb`` + ``meta_info.txt``,
:mod:`idc.data.lmdb_store`), one file each instead of one per patch.

The output folder is replaced only when it is an earlier export of this command (its card says
so and the folder holds nothing the card does not list, option files unedited); an output that
is, or holds, one of the inputs, a file, a link or anyone else's folder is refused with one line.

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
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import idc
from idc.atomic import remove_stale_temporaries, staging_folder
from idc.data.download import sha256_file
from idc.data.images import image_channels, image_size, list_images, write_png
from idc.data.indices import load_indices
from idc.data.store import PatchStore
from idc.progress import ProgressLog
from idc.provenance import PROVENANCE_KEY, provenance

__all__ = [
    "CARD_NAME",
    "CREATED_BY",
    "LR_NAMES",
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
CREATED_BY = "idc-workflow export"  # the card's `created_by` starts with this: the mark of an export
LR_NAMES = ("suffix", "same")  # LR file names: <name>x<s>.png (BasicSR, DIV2K) or <name>.png (neosr)
EXPORT_FORMATS = ("png", "lmdb")
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
            # no '.': LMDB readers cut keys at the first one
            stem = safe_name(Path(image_names[img]).stem).replace(".", "-")
        else:
            stem = f"img{img}"
        where = "syn" if org[0] < 0 else f"r{org[0]}_c{org[1]}"
        names.append(f"{k:0{width}d}_{stem}_{where}")
    return names


def _is_relative_to(path: Path, other: Path) -> bool:
    try:
        path.relative_to(other)
        return True
    except ValueError:
        return False


def _read_card(folder: Path) -> dict[str, Any] | None:
    try:
        card = yaml.safe_load((folder / CARD_NAME).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return card if isinstance(card, dict) else None


def _own_export_problem(folder: Path) -> str | None:
    """None when ``folder`` is an earlier export of this command that can be replaced without
    losing anything: its card says an export wrote it (``created_by``; cards of earlier versions:
    the package in ``software`` and the export ``layout``), every file in it is the card or one
    the card lists, and the small text files (option files, meta-info) are as written. Else why
    not, in a few words."""
    card = _read_card(folder)
    if card is None:
        return f"it holds no readable {CARD_NAME}"
    created_by = str(card.get("created_by", ""))
    older = isinstance(card.get("software"), dict) and "idc-workflow" in card["software"] and "layout" in card
    listed = card.get("sha256")
    if not (created_by.startswith(CREATED_BY) or older) or not isinstance(listed, dict):
        return f"its {CARD_NAME} was not written by `python -m idc export`"
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            return f"{rel} is not a plain file or folder"
        if path.is_dir() or rel == CARD_NAME:
            continue
        if rel not in listed:
            return f"{rel} is not one of the files its card lists"
        if path.suffix in (".yml", ".yaml", ".toml", ".txt") and path.stat().st_size < (1 << 20):
            if sha256_file(path) != listed[rel]:
                return f"{rel} was changed since the export"
    return None


def check_export_target(out_dir: str | os.PathLike, inputs: list[str | os.PathLike | None]) -> None:
    """ValueError (one line naming the path) unless ``out_dir`` may be written: it does not
    exist, is an empty folder, or is an earlier export of this command; and it neither is nor
    holds one of the ``inputs`` (replacing it would delete them)."""
    out_dir = Path(out_dir)
    out = Path(os.path.realpath(out_dir))
    for item in inputs:
        if item is None:
            continue
        src = Path(os.path.realpath(item))
        if out == src or _is_relative_to(src, out):
            raise ValueError(f"export: output {out_dir} is or holds the input {item}; "
                             "choose an output folder outside the inputs")
    if out_dir.is_symlink():
        raise ValueError(f"export: output {out_dir} is a symbolic link; refusing to replace it")
    if not os.path.lexists(out_dir):
        return
    if not out_dir.is_dir():
        raise ValueError(f"export: output {out_dir} exists and is not a folder; refusing to replace it")
    if not any(out_dir.iterdir()):
        return
    problem = _own_export_problem(out_dir)
    if problem:
        raise ValueError(f"export: refusing to replace {out_dir}: {problem} (not an earlier export of "
                         "this command); remove it yourself or choose another output")


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished folder into place; an earlier export (checked by
    :func:`check_export_target`) is removed only after that."""
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
    lr_names: str = "suffix",
    fmt: str = "png",
    root: str | os.PathLike | None = None,
    extra_inputs: list[str | os.PathLike] = (),
) -> Path:
    """Write the pairs of a patch store (all, or the rows of an index file: a baseline
    selection) as paired PNG folders (or LMDB databases, ``fmt="lmdb"``) with ``meta_info.txt``,
    ready-to-run training option files and a dataset card.

    ``card`` holds what only the caller knows (method, ratio, source and licence, config slice,
    seeds); the card adds counts, sizes, the store's provenance attrs, the provenance record, the
    memorisation summary (synthetic sets) and the SHA-256 of every file. ``names_from`` is a
    store whose image names name the pairs when the exported store has none of its own
    (synthetic stores keep the real store's image ids). ``lr_names="same"`` names each LR file
    as its HR file (neosr pairs by identical names). ``root``: the folder users train from; the
    option files then give paths relative to it instead of absolute ones. ``extra_inputs``:
    more files the output must not hold (e.g. the card file of the CLI).
    The folder is written under a temporary name and renamed when complete; an existing output
    is replaced only when it is an earlier export (:func:`check_export_target`).
    """
    from idc.data.train_options import option_files

    if lr_names not in LR_NAMES:
        raise ValueError(f"export: lr_names must be one of {', '.join(LR_NAMES)}, got {lr_names!r}")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export: format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    out_dir = Path(out_dir)
    if not out_dir.name or out_dir.name in (".", ".."):
        raise ValueError(f"export: output {out_dir} names no folder")
    check_export_target(out_dir, [store_path, indices_path, memorisation_path, names_from, *extra_inputs])
    if root is not None and not Path(root).is_dir():
        raise ValueError(f"export: root {root} is not a folder")
    if fmt == "lmdb":
        from idc.data.lmdb_store import lmdb_module

        try:
            lmdb_module()  # the missing package is said before any work
        except ImportError as err:
            raise ValueError(str(err)) from err
    store = PatchStore(store_path)
    if store.scale != scale:
        store.close()
        raise ValueError(f"patch store {store_path} has scale {store.scale}, the export asks for x{scale}")
    n_total = len(store)
    try:
        store.verify()  # the export reads every pair anyway; a corrupt chunk must not ship
        indices = load_indices(indices_path, n_total) if indices_path else np.arange(n_total, dtype=np.int64)
        memorisation = read_memorisation(memorisation_path) if memorisation_path else None
        image_names = store.image_names
        if image_names is None and names_from is not None:
            with PatchStore(names_from) as named:
                image_names = named.image_names
    except BaseException:
        store.close()
        raise
    names = pair_names(store.image_id[indices], store.origin[indices], image_names)
    hr_rel, lr_rel = Path("HR"), Path("LR_bicubic") / f"X{scale}"
    lr_suffix = f"x{scale}" if lr_names == "suffix" else ""
    lmdb_rel = ("HR.lmdb", f"LR_bicubic_X{scale}.lmdb") if fmt == "lmdb" else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    tmp = staging_folder(out_dir)
    try:
        progress = ProgressLog(logger, f"export {out_dir.name}", len(indices), unit="pairs")
        files: dict[str, str] = {}
        h, w = store.hr_shape[:2]

        def batches():
            for start in range(0, len(indices), _CHUNK):
                batch = indices[start:start + _CHUNK]
                lr, hr = store.read(batch)
                yield names[start:start + _CHUNK], lr, hr
                progress.update(len(batch))

        if lmdb_rel is None:
            files.update(_write_png_pairs(tmp, batches(), names, hr_rel, lr_rel, lr_suffix, (h, w)))
        else:
            _write_lmdb_pair(tmp, lmdb_rel, batches())
            for folder in lmdb_rel:
                for path in sorted((tmp / folder).iterdir()):
                    files[path.relative_to(tmp).as_posix()] = sha256_file(path)
        options = option_files(
            export_dir=out_dir, root=Path(root) if root is not None else None, name=safe_name(out_dir.name),
            scale=int(scale), hr_size=int(h), lr_size=int(store.lr_shape[0]), hr_rel=hr_rel.as_posix(),
            lr_rel=lr_rel.as_posix(), meta_info=META_INFO_NAME if lmdb_rel is None else None,
            lr_tmpl="{}" + lr_suffix, lmdb=lmdb_rel)
        for file_name, text in options.items():
            (tmp / file_name).write_text(text)
            files[file_name] = sha256_file(tmp / file_name)
        card = dict(card or {})
        made_by = {k: card.pop(k) for k in ("config", "seeds") if k in card}
        layout = _card_layout(hr_rel, lr_rel, lr_suffix, lmdb_rel)
        layout["options"] = {
            "files": sorted(options),
            "paths": f"relative to {Path(root).resolve()}" if root is not None else "absolute",
            "not written": _options_not_written(lr_names, fmt),
        }
        full_card = {
            "created_by": f"{CREATED_BY} {idc.__version__}",
            **card,
            "pairs": int(len(indices)),
            "scale": int(scale),
            "hr_size": [int(h), int(w)],
            "lr_size": [int(store.lr_shape[0]), int(store.lr_shape[1])],
            "memorisation": memorisation,
            "layout": layout,
            "store": {"path": str(store_path), "indices": str(indices_path) if indices_path else None,
                      **{k: store.attrs.get(k) for k in ("source", "created_by", "seed", "step")}},
            **made_by,
            PROVENANCE_KEY: provenance(seeds=made_by.get("seeds"), config=made_by.get("config")),
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


def _write_png_pairs(tmp: Path, batches: Iterable[tuple[list[str], np.ndarray, np.ndarray]], names: list[str],
                     hr_rel: Path, lr_rel: Path, lr_suffix: str, hr_hw: tuple[int, int]) -> dict[str, str]:
    """The pairs as PNG files in BasicSR's folder layout plus `meta_info.txt`; returns the SHA-256
    of every file written, by its path in the export."""
    files: dict[str, str] = {}
    (tmp / hr_rel).mkdir(parents=True)
    (tmp / lr_rel).mkdir(parents=True)
    for batch_names, lr, hr in batches:
        for name, lr_img, hr_img in zip(batch_names, lr, hr):
            for rel, img in ((hr_rel / f"{name}.png", hr_img), (lr_rel / f"{name}{lr_suffix}.png", lr_img)):
                write_png(tmp / rel, img, compress_level=PNG_LEVEL)
                files[rel.as_posix()] = sha256_file(tmp / rel)
    h, w = hr_hw
    (tmp / META_INFO_NAME).write_text("".join(f"{name}.png ({h},{w},3)\n" for name in names))
    files[META_INFO_NAME] = sha256_file(tmp / META_INFO_NAME)
    return files


def _card_layout(hr_rel: Path, lr_rel: Path, lr_suffix: str, lmdb_rel: tuple[str, str] | None) -> dict[str, Any]:
    """The card's description of the export's layout, with what BasicSR's training options need
    to read it as it is."""
    if lmdb_rel is None:
        return {
            "format": "png",
            "hr": hr_rel.as_posix(),
            "lr": lr_rel.as_posix(),
            "lr_name": f"<name>{lr_suffix}.png",
            "meta_info": META_INFO_NAME,
            "basicsr": {"type": "PairedImageDataset", "dataroot_gt": hr_rel.as_posix(),
                        "dataroot_lq": lr_rel.as_posix(), "meta_info_file": META_INFO_NAME,
                        "filename_tmpl": "{}" + lr_suffix, "io_backend": {"type": "disk"}},
        }
    return {
        "format": "lmdb",
        "hr": lmdb_rel[0],
        "lr": lmdb_rel[1],
        "keys": "<name> in both databases, listed in each one's meta_info.txt",
        "basicsr": {"type": "PairedImageDataset", "dataroot_gt": lmdb_rel[0],
                    "dataroot_lq": lmdb_rel[1], "io_backend": {"type": "lmdb"}},
    }


def _options_not_written(lr_names: str, fmt: str) -> dict[str, str]:
    skipped = {}
    if fmt == "lmdb":
        skipped["traiNNer-redux"] = "its LMDB mode reads images by path (vipsimfrompath): export as PNG"
    elif lr_names != "same":
        skipped["neosr"] = "neosr pairs LR and HR files by identical names: export with lr_names same"
    return skipped


def _write_lmdb_pair(tmp: Path, lmdb_rel: tuple[str, str], batches) -> None:
    """HR and LR databases in one pass over the store (each pair read once)."""
    from idc.data.lmdb_store import LmdbWriter

    with LmdbWriter(tmp / lmdb_rel[0], compress_level=PNG_LEVEL) as hr_db, \
            LmdbWriter(tmp / lmdb_rel[1], compress_level=PNG_LEVEL) as lr_db:
        for batch_names, lr, hr in batches:
            for name, lr_img, hr_img in zip(batch_names, lr, hr):
                hr_db.put(name, hr_img)
                lr_db.put(name, lr_img)


# ---------------------------------------------------------------- import
def read_memorisation(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``overall`` entry of a memorisation JSON (``python -m idc memorisation``), for the card."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"memorisation file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"memorisation file {path} is not JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("overall", {}), dict):
        raise ValueError(f"memorisation file {path} must be a JSON object with an 'overall' object")
    return data.get("overall")


def read_meta_info(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int] | None]]:
    """``[(gt file name, (h, w, c) or None)]`` from a BasicSR meta-info file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"meta-info file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"meta-info file {path} is not UTF-8 text (byte {err.start})") from None
    entries = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split(" ")
        if not fields[0]:
            continue
        shape = None
        if len(fields) > 1:
            m = re.fullmatch(r"\((\d+),(\d+),(\d+)\)", "".join(fields[1:]))
            if not m:
                raise ValueError(f"{path} line {number}: expected '<name> (h,w,c)', got {line.strip()!r}")
            shape = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        # A name listed twice would crop the image twice: its patches would count double.
        if fields[0] in first_line:
            raise ValueError(f"{path} line {number}: {fields[0]} is already listed on line {first_line[fields[0]]}")
        first_line[fields[0]] = number
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
                channels = image_channels(by_name[name])
                if shape[2] != channels:
                    raise ValueError(f"{meta_info}: {name} is listed with {shape[2]} channels, the file has {channels}")
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
