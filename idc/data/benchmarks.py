"""SR benchmark test sets (Set5, Set14, BSD100, Urban100, Manga109) in the usual layout.

``prepare_testset`` writes ``out_dir/HR/<stem>.png`` (RGB, mod-cropped to the scale, top-left
kept) and ``out_dir/LR_bicubic/X<scale>/<stem>x<scale>.png``: the provided LR files when given
(their size must be HR/scale), else MATLAB ``imresize`` of the mod-cropped HR. Grayscale images
(Set14 'bridge') become RGB by channel replication. The source is a local folder or an archive
URL with its SHA-256. The result appears atomically (temporary folder, then rename) with a
``testset.json`` manifest. An existing ``out_dir`` is replaced only when it is empty or holds such
a manifest (a folder this tool wrote); an ``out_dir`` equal to, inside, or around an input folder
is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from idc import __version__
from idc.atomic import remove_stale_temporaries, staging_folder
from idc.data.crop import find_lr_file
from idc.data.download import download, safe_extract
from idc.data.images import image_size, list_images, read_image, write_png
from idc.data.imresize import imresize_uint8, modcrop

__all__ = ["KNOWN_TESTSETS", "prepare_testset", "find_image_dirs"]

logger = logging.getLogger(__name__)

KNOWN_TESTSETS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")


def _has_images(folder: Path) -> bool:
    try:
        list_images(folder)
    except (ValueError, FileNotFoundError):
        return False
    return True


def find_image_dirs(root: Path, scale: int) -> tuple[Path, Path | None]:
    """Locate the HR folder (a folder named ``HR``, else the only folder holding images) and the
    LR folder (``LR_bicubic/X<scale>``, if any) inside an extracted archive."""
    dirs = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    hr = [d for d in dirs if d.name.lower() == "hr" and _has_images(d)]
    if not hr:
        hr = [d for d in dirs if _has_images(d)]
    if len(hr) != 1:
        raise ValueError(
            f"cannot tell the HR image folder in {root}: found {[str(d) for d in hr] or 'none'}"
        )
    lr = [
        d
        for d in dirs
        if d.name.lower() == f"x{scale}"
        and d.parent.name.lower().startswith("lr")
        and _has_images(d)
    ]
    return hr[0], (lr[0] if len(lr) == 1 else None)


MANIFEST = "testset.json"  # written last into every prepared folder: the mark of this tool


def _is_prepared(folder: Path) -> bool:
    """Whether ``folder`` is a test set this function wrote (its manifest names the package)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("created_by", "")).startswith("idc-workflow")


def _check_out_dir(name: str, out_dir: Path, inputs: list[Path]) -> None:
    """Refuse an output folder that overlaps an input (it would destroy the originals) or an
    existing folder this tool did not create."""
    out = out_dir.resolve()
    for source in inputs:
        src = source.resolve()
        if out == src or out.is_relative_to(src) or src.is_relative_to(out):
            raise ValueError(
                f"test set {name}: output folder {out_dir} overlaps the input folder {source} "
                "(choose an output outside the originals)"
            )
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ValueError(f"test set {name}: output {out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not _is_prepared(out_dir):
        raise ValueError(
            f"test set {name}: refusing to replace {out_dir}: it was not written by prepare-testset "
            f"(no {MANIFEST} of this tool); remove it yourself or choose another output"
        )


def _checked_pairs(name: str, hr_files: list[Path], lr_path: Path | None, scale: int) -> list[Path | None]:
    """The LR file of every HR image (None: made by imresize), each size checked: an HR image at
    least the scale, an LR file exactly HR / scale. One line naming the first bad file."""
    lr_files: list[Path | None] = []
    for hr_file in hr_files:
        h, w = image_size(hr_file)
        if h < scale or w < scale:
            raise ValueError(
                f"test set {name}: image {hr_file} ({h}x{w}) is smaller than the scale {scale}"
            )
        if lr_path is None:
            lr_files.append(None)
            continue
        lr_file = find_lr_file(lr_path, hr_file, scale)
        if image_size(lr_file) != (h // scale, w // scale):
            raise ValueError(
                f"test set {name}: LR image {lr_file} is {image_size(lr_file)}, expected {(h // scale, w // scale)}"
            )
        lr_files.append(lr_file)
    return lr_files


def _write_pairs(staged: Path, hr_files: list[Path], lr_files: list[Path | None], scale: int) -> None:
    """The test set's layout: mod-cropped HR, and LR given or made by MATLAB-exact imresize."""
    for hr_file, lr_file in zip(hr_files, lr_files):
        hr = modcrop(read_image(hr_file), scale)
        lr = read_image(lr_file) if lr_file is not None else imresize_uint8(hr, 1.0 / scale)
        write_png(staged / "HR" / f"{hr_file.stem}.png", hr)
        write_png(staged / "LR_bicubic" / f"X{scale}" / f"{hr_file.stem}x{scale}.png", lr)


def prepare_testset(
    name: str,
    out_dir: str | os.PathLike,
    *,
    hr_dir: str | os.PathLike | None = None,
    lr_dir: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    scale: int = 4,
    skip: int = 0,
    images: int | None = None,
) -> Path:
    """Write test set ``name`` to ``out_dir`` (layout in the module docstring); returns out_dir.

    ``skip`` drops the first images in name order and ``images`` keeps at most that many of the
    rest, so a folder that also holds training images (the first K of BSD100) can give a test
    set disjoint from them.

    Exactly one source: ``hr_dir`` (with optional ``lr_dir``) or ``url`` + ``sha256`` of a zip/tar
    archive (its ``HR`` and ``LR_bicubic/X<scale>`` folders are found inside). All headers are
    checked before anything is written; a missing LR file in a given ``lr_dir`` is an error.
    """
    out_dir = Path(out_dir)
    inputs = [Path(p) for p in (hr_dir, lr_dir) if p is not None]
    _check_out_dir(name, out_dir, inputs)
    if int(scale) != scale or scale < 1:
        raise ValueError(f"test set {name}: scale must be a positive integer, got {scale!r}")
    if (hr_dir is None) == (url is None):
        raise ValueError(f"test set {name}: give exactly one of hr_dir or url")
    if url is not None and not sha256:
        raise ValueError(f"test set {name}: url {url} needs its sha256")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    work = staging_folder(out_dir)
    try:
        if url is not None:
            archive = download(url, work / "download" / Path(url.split("?")[0]).name, sha256=sha256)
            extracted = safe_extract(archive, work / "extracted")
            hr_path, found_lr = find_image_dirs(extracted, scale)
            lr_path = Path(lr_dir) if lr_dir is not None else found_lr
        else:
            hr_path = Path(hr_dir)  # type: ignore[arg-type]
            lr_path = Path(lr_dir) if lr_dir is not None else None
            if lr_path is not None and not lr_path.is_dir():
                raise FileNotFoundError(f"test set {name}: LR folder not found: {lr_path}")
        hr_files = list_images(hr_path)[skip : None if images is None else skip + images]
        if not hr_files:
            raise ValueError(f"test set {name}: no images left in {hr_path} after skip {skip}")
        lr_files = _checked_pairs(name, hr_files, lr_path, scale)  # everything, before writing
        staged = work / "out"
        _write_pairs(staged, hr_files, lr_files, scale)
        manifest = {
            "name": name,
            "scale": int(scale),
            "n_images": len(hr_files),
            "images": [p.stem for p in hr_files],
            "skip": int(skip),
            "hr_source": url or str(hr_path),
            "lr_source": (
                "provided files"
                if lr_path is not None
                else "MATLAB bicubic imresize of the mod-cropped HR"
            ),
            "created_by": f"idc-workflow {__version__}",
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            # Checked again: only a folder this function wrote is ever replaced; the old one is
            # moved aside first so a failure leaves one of the two complete.
            _check_out_dir(name, out_dir, inputs)
            os.replace(out_dir, work / "previous")
        os.replace(staged, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "prepared test set %s: %d images in %s (LR: %s)",
        name,
        len(hr_files),
        out_dir,
        manifest["lr_source"],
    )
    return out_dir
