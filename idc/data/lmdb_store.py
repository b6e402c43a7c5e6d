"""Image folders as LMDB databases in BasicSR's layout, the format BasicSR, MambaIR and neosr read
with ``io_backend: lmdb`` (one database file instead of one file per patch: an export of a
DIV2K-sized set is ~241k PNG files, hard on shared file systems).

Layout of one database (BasicSR ``basicsr/utils/lmdb_util.py``, ``make_lmdb_from_imgs``; read by
``basicsr/data/data_util.py``, ``paired_paths_from_lmdb``, and ``FileClient('lmdb')``)::

    <name>.lmdb/data.mdb       key: the image name without extension (ASCII), value: PNG bytes
    <name>.lmdb/meta_info.txt  one line per image, ``<key>.png (h,w,c) <png compression level>``

The readers take each key as ``line.split('.')[0]`` of ``meta_info.txt`` and look up the same key
in the LQ and the GT database, so keys contain no '.' and no space, and a pair has one key in both
databases. Values are ordinary PNG files (RGB); BasicSR decodes them with ``cv2.imdecode`` (BGR in
memory, as for its disk backend). No ``lock.mdb`` is written: the readers open with ``lock=False``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["LMDB_META_INFO", "LmdbImages", "LmdbWriter", "lmdb_module", "read_lmdb_pairs", "write_lmdb"]

LMDB_META_INFO = "meta_info.txt"
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_LINE = re.compile(r"([A-Za-z0-9_-]+)\.png \((\d+),(\d+),(\d+)\) (\d+)")
_BATCH = 256  # images per write transaction


def lmdb_module():
    """The ``lmdb`` package, or an ImportError saying how to install it (one line)."""
    try:
        import lmdb
    except ImportError as err:
        raise ImportError("LMDB export needs the lmdb package: pip install lmdb "
                          "(or pip install 'idc-workflow[lmdb]')") from err
    return lmdb


def encode_png(img: np.ndarray, compress_level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


class LmdbWriter:
    """A new database folder ``path`` (it must not exist: callers assemble it in a staging
    folder), filled by ``put(key, uint8 HxWx3 image)``; ``close()`` commits and writes
    ``meta_info.txt`` (a context manager does both; on an error nothing is committed)."""

    INITIAL_MAP_SIZE = 64 << 20  # bytes; doubled whenever a transaction does not fit

    def __init__(self, path: str | os.PathLike, *, compress_level: int = 3):
        self._lmdb = lmdb_module()
        self.path = Path(path)
        if os.path.lexists(self.path):
            raise FileExistsError(f"LMDB folder {self.path} exists already")
        self.path.mkdir(parents=True)
        self.compress_level = compress_level
        self._map_size = int(self.INITIAL_MAP_SIZE)
        self._env = self._lmdb.open(str(self.path), map_size=self._map_size, lock=False, subdir=True,
                                    meminit=False)
        self.keys: list[str] = []
        self._seen: set[str] = set()
        self._lines: list[str] = []
        self._batch: list[tuple[bytes, bytes]] = []

    def put(self, key: str, img: np.ndarray) -> None:
        if not _KEY.fullmatch(key):
            raise ValueError(f"LMDB key {key!r} for {self.path}: only letters, digits, '-' and '_' "
                             "(BasicSR's readers cut keys at the first '.')")
        if key in self._seen:
            raise ValueError(f"LMDB key {key!r} appears twice in {self.path}")
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"LMDB image {key} for {self.path}: expected uint8 HxWx3, got {img.dtype} {img.shape}")
        self._seen.add(key)
        self.keys.append(key)
        h, w, c = img.shape
        self._lines.append(f"{key}.png ({h},{w},{c}) {self.compress_level}\n")
        self._batch.append((key.encode("ascii"), encode_png(img, self.compress_level)))
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for k, v in self._batch:
                        txn.put(k, v, overwrite=False)
                break
            except self._lmdb.MapFullError:  # the transaction was aborted: grow, write it again
                self._map_size *= 2
                self._env.set_mapsize(self._map_size)
        self._batch.clear()

    def close(self) -> None:
        if self._env is None:
            return
        try:
            if self._batch:
                self._flush()
            self._env.sync(True)
        finally:
            self._env.close()
            self._env = None
        (self.path / LMDB_META_INFO).write_text("".join(self._lines))

    def abort(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> LmdbWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_lmdb(path: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]], *,
               compress_level: int = 3) -> list[str]:
    """Write ``(key, uint8 HxWx3 image)`` items into a new database folder; returns the keys."""
    with LmdbWriter(path, compress_level=compress_level) as writer:
        for key, img in items:
            writer.put(key, img)
    return writer.keys


class LmdbImages:
    """Read-only view of one database: ``keys`` in ``meta_info.txt`` order, ``shapes``,
    ``read(key)`` -> uint8 HxWx3 (RGB), checked against the shape its meta-info line gives."""

    def __init__(self, path: str | os.PathLike):
        lmdb = lmdb_module()
        self.path = Path(path)
        meta = self.path / LMDB_META_INFO
        if not (self.path / "data.mdb").is_file():
            raise FileNotFoundError(f"LMDB database not found: {self.path / 'data.mdb'}")
        if not meta.is_file():
            raise FileNotFoundError(f"LMDB meta-info file not found: {meta}")
        self.keys: list[str] = []
        self.shapes: dict[str, tuple[int, int, int]] = {}
        for number, line in enumerate(meta.read_text().splitlines(), 1):
            if not line.strip():
                continue
            m = _LINE.fullmatch(line.strip())
            if not m:
                raise ValueError(f"{meta} line {number}: expected '<key>.png (h,w,c) <level>', got {line.strip()!r}")
            key = m.group(1)
            if key in self.shapes:
                raise ValueError(f"{meta} line {number}: key {key} listed twice")
            self.keys.append(key)
            self.shapes[key] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        self._env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False, subdir=True)

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, key: str) -> np.ndarray:
        with self._env.begin(write=False) as txn:
            value = txn.get(key.encode("ascii"))
        if value is None:
            raise KeyError(f"LMDB {self.path}: key {key} is in {LMDB_META_INFO} but not in data.mdb")
        with Image.open(io.BytesIO(value)) as im:
            if im.mode != "RGB":
                raise ValueError(f"LMDB {self.path}: {key} is a {im.mode} image, expected RGB")
            arr = np.asarray(im, dtype=np.uint8).copy()
        if arr.shape != self.shapes[key]:
            raise ValueError(f"LMDB {self.path}: {key} is {arr.shape}, its meta-info line says {self.shapes[key]}")
        return arr

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for key in self.keys:
            yield key, self.read(key)

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> LmdbImages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_lmdb_pairs(lq_path: str | os.PathLike, gt_path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(key, lq, gt)`` for every key, in the GT database's meta-info order; the two databases
    must list the same keys (BasicSR's ``paired_paths_from_lmdb`` refuses them otherwise)."""
    with LmdbImages(lq_path) as lq, LmdbImages(gt_path) as gt:
        if set(lq.keys) != set(gt.keys):
            missing = sorted(set(gt.keys) ^ set(lq.keys))
            raise ValueError(f"LMDB {lq_path} and {gt_path} hold different keys (e.g. {missing[0]})")
        for key in gt.keys:
            yield key, lq.read(key), gt.read(key)
