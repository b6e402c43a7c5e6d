"""HDF5 patch store: aligned LR/HR patch pairs, one file per data set (schema in DESIGN.md).

Layout:

* ``lr``        (N, h, w, 3) uint8, h = w = hr_size / scale
* ``hr``        (N, H, W, 3) uint8, H = W = hr_size
* ``image_id``  (N,) int64: the source image of each patch
* ``origin``    (N, 2) int64: (row, col) of the HR crop's top-left corner; -1 for synthetic patches
* optional ``image_name`` (n_images,) str: file name of image id i (set by the cropper)
* attrs ``scale``, ``hr_size``, ``step``, ``source``, ``created_by`` (package version), ``seed``
  (-1 when no randomness was involved), ``compression``, ``sha256_<dataset>`` (checksum of each
  dataset as written, :func:`dataset_digest`; the index arrays are checked on every open, the
  image arrays by :meth:`PatchStore.verify` / ``store-info --verify``), and ``complete`` = True
  written last.

Each patch is one HDF5 chunk (a random read touches exactly one chunk), compressed with LZF.
Measured on BSD100 256x256 HR patches (2 shared CPU cores, page cache; bench/bench_data.py):
random single-patch reads LZF 2,490/s vs gzip-1 2,050/s, gzip-4 2,150/s on a quiet machine and
450/s vs 280/s, 360/s under load; size 86-87 % vs 73-75 % of raw. Training reads random patches
all day, so the faster decoder wins over the smaller file. (LZF costs more to write, ~55 MB/s per
core; the cropper therefore compresses in its worker processes.)

Writers write to a temporary name in the same folder and rename on success, so a store that
exists under its final name is complete; readers also check the ``complete`` marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from idc import __version__
from idc.atomic import move_into_place, remove_stale_temporaries, temporary_path

__all__ = ["PatchStoreWriter", "PatchStore", "write_patch_store", "dataset_digest", "SCHEMA_VERSION",
           "COMPRESSION", "check_replaceable_store", "is_own_store"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COMPRESSION = "lzf"
REQUIRED_ATTRS = ("scale", "hr_size", "step", "source", "created_by", "seed")
_ID_CHUNK = 4096  # chunk length of the small 1-D/2-D index datasets
# Free space kept beyond each write: HDF5's chunk caches (1 MiB per dataset) and metadata are
# flushed at close, so the disk must still take them after the last append.
WRITE_MARGIN = 8 << 20


def _attr_value(value: Any) -> Any:
    """Python value -> something HDF5 stores (dicts/lists as JSON text, None as 'null')."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _python_value(value: Any) -> Any:
    """HDF5 attribute -> plain Python (numpy scalars to int/float/bool, bytes to str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# The `created_by` attr of every store this package writes starts with this: how a writer knows
# that an existing file at its output path is its own earlier output, and so may be replaced.
CREATED_BY_PREFIX = "idc-workflow"


def is_own_store(path: Path) -> bool:
    """Whether ``path`` is an HDF5 patch store written by this package (its ``created_by`` attr
    names the package). Any file that cannot be opened as HDF5 is not."""
    try:
        with h5py.File(path, "r") as f:
            created_by = _python_value(f.attrs.get("created_by", ""))
    except (OSError, ValueError):
        return False
    return isinstance(created_by, str) and created_by.startswith(CREATED_BY_PREFIX)


def check_replaceable_store(path: str | os.PathLike) -> None:
    """ValueError naming ``path`` unless a store may be written there: nothing exists there yet,
    or it is a store this package wrote (a rerun replaces its own output, never a user's file)."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise ValueError(f"patch store {path}: the output path is a folder")
    if not path.is_file():
        raise ValueError(f"patch store {path}: the output path exists and is not a regular file")
    if not is_own_store(path):
        raise ValueError(
            f"patch store {path}: the output path holds a file not written by idc-workflow; "
            "refusing to replace it (move it away or choose another output)"
        )


def check_free_space(path: Path, needed_bytes: int) -> None:
    """OSError naming the folder when it has less free space than ``needed_bytes`` (checked
    before a long write: a full disk half-way wastes the work and can crash HDF5)."""
    free = shutil.disk_usage(path.parent).free
    if free < needed_bytes:
        raise OSError(
            f"not enough free space for {path}: about {needed_bytes / 1e6:,.1f} MB needed, "
            f"{free / 1e6:,.1f} MB free in {path.parent}"
        )


def dataset_digest(ds: h5py.Dataset) -> str:
    """SHA-256 of a dataset as stored: the bytes of each chunk as written (compressed) for the
    one-patch-per-chunk image arrays (no decompression, so a whole store hashes in seconds), the
    values for the small ones. Written at creation, compared by :meth:`PatchStore.verify`."""
    digest = hashlib.sha256()
    digest.update(repr((ds.dtype.str, ds.shape)).encode())
    if ds.chunks is not None and ds.ndim > 1 and ds.chunks[0] == 1 and ds.chunks[1:] == ds.shape[1:]:
        tail = (0,) * (ds.ndim - 1)
        for i in range(ds.shape[0]):
            mask, chunk = ds.id.read_direct_chunk((i, *tail))
            digest.update(mask.to_bytes(4, "little"))
            digest.update(chunk)
    elif h5py.check_string_dtype(ds.dtype) is not None:
        for value in ds.asstr()[...].reshape(-1):
            digest.update(value.encode() + b"\0")
    else:
        digest.update(np.ascontiguousarray(ds[...]).tobytes())
    return digest.hexdigest()


class PatchStoreWriter:
    """Write a patch store incrementally; atomic on success.

    ``with PatchStoreWriter(path, scale=4, hr_size=256, step=128, source="DIV2K", seed=0) as w:
    w.append(lr, hr, image_id, origin)``. Data goes to ``.<name>.tmp-<pid>-<token>`` in the same folder;
    a clean ``close()``/``__exit__`` writes ``complete=True`` and renames it to ``path``; an
    exception deletes the temporary file and leaves any previous ``path`` untouched.
    ``seed=None`` is recorded as -1.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        scale: int,
        hr_size: int,
        step: int,
        source: str,
        seed: int | None,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        if int(scale) != scale or scale < 1:
            raise ValueError(f"patch store {path}: scale must be a positive integer, got {scale!r}")
        if int(hr_size) != hr_size or hr_size < 1 or hr_size % int(scale):
            raise ValueError(
                f"patch store {path}: hr_size {hr_size!r} must be a positive multiple of scale {scale}"
            )
        self.path = Path(path)
        check_replaceable_store(self.path)
        self.scale = int(scale)
        self.hr_size = int(hr_size)
        self.lr_size = self.hr_size // self.scale
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        self.tmp_path = temporary_path(self.path)
        self._file: h5py.File | None = None
        self._n = 0
        try:
            self._file = h5py.File(self.tmp_path, "w")
        except OSError as err:
            self.tmp_path.unlink(missing_ok=True)
            raise OSError(f"patch store {path}: cannot create {self.tmp_path}: {err}") from None
        f = self._file
        try:
            for name, size in (("lr", self.lr_size), ("hr", self.hr_size)):
                f.create_dataset(
                    name,
                    shape=(0, size, size, 3),
                    maxshape=(None, size, size, 3),
                    chunks=(1, size, size, 3),
                    dtype=np.uint8,
                    compression=COMPRESSION,
                )
            f.create_dataset(
                "image_id", shape=(0,), maxshape=(None,), chunks=(_ID_CHUNK,), dtype=np.int64
            )
            f.create_dataset(
                "origin", shape=(0, 2), maxshape=(None, 2), chunks=(_ID_CHUNK, 2), dtype=np.int64
            )
            attrs = {
                "scale": self.scale,
                "hr_size": self.hr_size,
                "step": int(step),
                "source": str(source),
                "created_by": f"idc-workflow {__version__}",
                "seed": -1 if seed is None else int(seed),
                "schema_version": SCHEMA_VERSION,
                "compression": COMPRESSION,
                "software": f"numpy {np.__version__}, h5py {h5py.__version__}",
            }
            for key, value in (extra_attrs or {}).items():
                if key in attrs or key == "complete":
                    raise ValueError(
                        f"patch store {path}: extra attr {key!r} clashes with a schema attr"
                    )
                attrs[key] = value
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)
        except BaseException:
            self._abort()
            raise

    def __len__(self) -> int:
        return self._n

    def append(
        self,
        lr: np.ndarray,
        hr: np.ndarray,
        image_id: np.ndarray | int,
        origin: np.ndarray,
    ) -> None:
        """Append a batch: ``lr`` (n,h,w,3) uint8, ``hr`` (n,H,W,3) uint8, ``image_id`` (n,) or a
        scalar, ``origin`` (n,2) (use -1 for synthetic patches)."""
        if self._file is None:
            raise ValueError(f"patch store {self.path}: writer is closed")
        lr = np.asarray(lr)
        hr = np.asarray(hr)
        n = hr.shape[0] if hr.ndim == 4 else -1
        if lr.dtype != np.uint8 or hr.dtype != np.uint8:
            raise ValueError(
                f"patch store {self.path}: lr/hr must be uint8, got {lr.dtype}/{hr.dtype}"
            )
        if hr.shape[1:] != (self.hr_size, self.hr_size, 3) or hr.ndim != 4:
            raise ValueError(
                f"patch store {self.path}: hr batch must be (n,{self.hr_size},{self.hr_size},3), got {hr.shape}"
            )
        if lr.shape != (n, self.lr_size, self.lr_size, 3):
            raise ValueError(
                f"patch store {self.path}: lr batch must be ({n},{self.lr_size},{self.lr_size},3), got {lr.shape}"
            )
        ids = np.broadcast_to(np.asarray(image_id, dtype=np.int64), (n,))
        org = np.asarray(origin, dtype=np.int64)
        if org.shape != (n, 2):
            raise ValueError(f"patch store {self.path}: origin must be ({n},2), got {org.shape}")
        if n == 0:
            return
        self._ensure_space(lr.nbytes + hr.nbytes + 24 * n)
        f = self._file
        start, stop = self._n, self._n + n
        with self._aborting_on_error():
            for name, data in (("lr", lr), ("hr", hr), ("image_id", ids), ("origin", org)):
                ds = f[name]
                ds.resize(stop, axis=0)
                ds[start:stop] = data
        self._n = stop

    def _ensure_space(self, nbytes: int) -> None:
        """Refuse a write that would fill the disk, before HDF5 attempts it: HDF5 defers write
        errors to its caches and, out of space, can crash the process instead of raising."""
        try:
            check_free_space(self.tmp_path, nbytes + WRITE_MARGIN)
        except OSError:
            self._abort()
            raise

    @contextlib.contextmanager
    def _aborting_on_error(self) -> Iterator[None]:
        """A failed write (a full disk, a lost mount) removes the temporary file at once and
        says which store it was, instead of leaving a half-written file for the next attempt."""
        try:
            yield
        except OSError as err:
            self._abort()
            raise OSError(f"patch store {self.path}: writing failed (disk full?): {err}") from None

    def append_store(self, path: str | os.PathLike) -> int:
        """Append every patch of another complete store (same scale and sizes); returns the count.

        Compressed chunks are copied as they are (no decompress/recompress) when the chunking and
        compression match, which lets worker processes compress in parallel: each writes a small
        store, the single writer process only concatenates bytes.
        """
        if self._file is None:
            raise ValueError(f"patch store {self.path}: writer is closed")
        source = PatchStore(path)  # validates schema and completion marker
        if source.hr_shape != (self.hr_size, self.hr_size, 3) or source.lr_shape != (
            self.lr_size,
            self.lr_size,
            3,
        ):
            raise ValueError(
                f"patch store {path}: patch shapes {source.lr_shape}/{source.hr_shape} do not match {self.path}"
            )
        n = len(source)
        start, stop = self._n, self._n + n
        self._ensure_space(n * (3 * (self.hr_size**2 + self.lr_size**2) + 24))
        with self._aborting_on_error(), h5py.File(source.path, "r") as src:
            for name in ("lr", "hr"):
                s_ds, d_ds = src[name], self._file[name]
                d_ds.resize(stop, axis=0)
                same_layout = (
                    s_ds.chunks == d_ds.chunks
                    and s_ds.compression == d_ds.compression
                    and s_ds.compression_opts == d_ds.compression_opts
                    and s_ds.chunks[0] == 1
                )
                if same_layout:
                    tail = (0,) * (s_ds.ndim - 1)
                    for i in range(n):
                        mask, chunk = s_ds.id.read_direct_chunk((i, *tail))
                        d_ds.id.write_direct_chunk((start + i, *tail), chunk, mask)
                else:
                    d_ds[start:stop] = s_ds[...]
            for name, data in (("image_id", source.image_id), ("origin", source.origin)):
                ds = self._file[name]
                ds.resize(stop, axis=0)
                ds[start:stop] = data
        self._n = stop
        return n

    def write_array(self, name: str, data: np.ndarray | list[str]) -> None:
        """Store an extra dataset (e.g. ``image_name``: file name per image id)."""
        if self._file is None:
            raise ValueError(f"patch store {self.path}: writer is closed")
        if name in ("lr", "hr", "image_id", "origin"):
            raise ValueError(f"patch store {self.path}: {name!r} is written by append()")
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
            self._file.create_dataset(
                name, data=np.asarray(data, dtype=object), dtype=h5py.string_dtype()
            )
        else:
            self._file.create_dataset(name, data=np.asarray(data))

    def close(self) -> Path:
        """Finish: write the completion marker, close, rename to the final path. Returns it."""
        if self._file is None:
            return self.path
        try:
            self._file.attrs["n_patches"] = self._n
            for name in self._file:
                self._file.attrs[f"sha256_{name}"] = dataset_digest(self._file[name])
            self._file.attrs["complete"] = True  # last write: readers refuse files without it
            self._file.close()
            self._file = None
            move_into_place(self.tmp_path, self.path)
        except OSError as err:
            self._abort()
            raise OSError(f"patch store {self.path}: finishing failed (disk full?): {err}") from None
        except BaseException:
            self._abort()
            raise
        logger.debug("wrote %d patch pairs to %s", self._n, self.path)
        return self.path

    def _abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the temp file is removed regardless
                pass
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> PatchStoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __del__(self) -> None:  # an abandoned writer must not leave a temp file behind
        if getattr(self, "_file", None) is not None:
            self._abort()


class PatchStore:
    """Read-only view of a patch store, validated on open, safe in DataLoader workers.

    The schema, dataset shapes and the ``complete`` marker are checked when the object is made;
    the HDF5 handle is then opened lazily, once per process (a forked or spawned worker reopens
    it), so the object can be passed to ``torch.utils.data.DataLoader`` workers.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"patch store not found: {self.path}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as err:
            raise ValueError(
                f"not a readable HDF5 patch store (corrupt or truncated?): {self.path}: {err}"
            ) from None
        with f:
            self._validate(f)
            self.attrs: dict[str, Any] = {k: _python_value(v) for k, v in f.attrs.items()}
            self.image_id: np.ndarray = f["image_id"][...].astype(np.int64)
            self.origin: np.ndarray = f["origin"][...].astype(np.int64)
            self.lr_shape: tuple[int, ...] = tuple(f["lr"].shape[1:])
            self.hr_shape: tuple[int, ...] = tuple(f["hr"].shape[1:])
            self._len = int(f["hr"].shape[0])
            if "image_name" in f:
                self.image_names: list[str] | None = [
                    _python_value(x) for x in f["image_name"][...]
                ]
            else:
                self.image_names = None
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _validate(self, f: h5py.File) -> None:
        where = f"patch store {self.path}"
        if not bool(f.attrs.get("complete", False)):
            raise ValueError(
                f"{where} is incomplete (no completion marker: half-written or interrupted)"
            )
        for name in ("lr", "hr", "image_id", "origin"):
            if name not in f:
                raise ValueError(f"{where} lacks dataset {name!r}")
        missing = [a for a in REQUIRED_ATTRS if a not in f.attrs]
        if missing:
            raise ValueError(f"{where} lacks attrs {missing}")
        lr, hr, ids, org = f["lr"], f["hr"], f["image_id"], f["origin"]
        if lr.dtype != np.uint8 or hr.dtype != np.uint8 or lr.ndim != 4 or hr.ndim != 4:
            raise ValueError(
                f"{where}: lr/hr must be 4-D uint8, got {lr.dtype}{lr.shape}/{hr.dtype}{hr.shape}"
            )
        n = hr.shape[0]
        if lr.shape[0] != n or ids.shape != (n,) or org.shape != (n, 2):
            raise ValueError(
                f"{where}: inconsistent lengths lr {lr.shape}, hr {hr.shape}, image_id {ids.shape}, origin {org.shape}"
            )
        try:
            scale = int(f.attrs["scale"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: attr scale {_python_value(f.attrs['scale'])!r} is not an integer") from None
        if scale < 1:
            raise ValueError(f"{where}: attr scale {scale} is not positive")
        if (
            hr.shape[3] != 3
            or lr.shape[3] != 3
            or hr.shape[1] != lr.shape[1] * scale
            or hr.shape[2] != lr.shape[2] * scale
        ):
            raise ValueError(
                f"{where}: hr {hr.shape[1:]} is not lr {lr.shape[1:]} times scale {scale}"
            )
        if "n_patches" in f.attrs and int(f.attrs["n_patches"]) != n:
            raise ValueError(
                f"{where}: n_patches attr {int(f.attrs['n_patches'])} != {n} stored (truncated?)"
            )
        # The small index arrays are read whole on every open: their checksums cost nothing.
        for name in ("image_id", "origin"):
            self._check_digest(f, name)
        image_id, origin = ids[...], org[...]
        if n and image_id.min() < 0:
            raise ValueError(f"{where}: negative image_id {int(image_id.min())} (corrupt?)")
        if "image_name" in f and n and image_id.max() >= f["image_name"].shape[0]:
            raise ValueError(
                f"{where}: image_id {int(image_id.max())} has no entry in image_name "
                f"({f['image_name'].shape[0]} names)"
            )
        if n and origin.min() < -1:
            raise ValueError(f"{where}: origin {int(origin.min())} below -1 (corrupt?)")

    def _check_digest(self, f: h5py.File, name: str) -> bool:
        """Compare dataset `name` with the checksum written at creation; False when the store
        has none (written by an earlier version)."""
        expected = f.attrs.get(f"sha256_{name}")
        if expected is None:
            return False
        try:
            actual = dataset_digest(f[name])
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"patch store {self.path}: dataset {name!r} cannot be read (corrupt?): {err}") from None
        if actual != _python_value(expected):
            raise ValueError(
                f"patch store {self.path}: dataset {name!r} does not match the checksum written at "
                "creation (corrupt file: recreate it)"
            )
        return True

    def verify(self) -> list[str]:
        """Compare every dataset with its checksum from creation (reads the whole file);
        ValueError naming the first mismatch. Returns the names verified (empty for stores
        written before checksums existed)."""
        with h5py.File(self.path, "r") as f:
            return [name for name in f if self._check_digest(f, name)]

    # -- lazy per-process handle -------------------------------------------------------------
    def _handle(self) -> h5py.File:
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            # After fork the parent's handle must not be used (HDF5 is not fork-safe): reopen.
            self._file = h5py.File(self.path, "r")
            self._pid = pid
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __enter__(self) -> PatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (
            f"PatchStore({str(self.path)!r}, n={self._len}, lr={self.lr_shape}, hr={self.hr_shape})"
        )

    # -- reads --------------------------------------------------------------------------------
    def _index_array(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype == bool:
            raise ValueError(f"patch store {self.path}: pass integer indices, not a boolean mask")
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._len):
            raise IndexError(f"patch store {self.path}: index out of range [0, {self._len})")
        return idx

    def _read_dataset(self, name: str, idx: np.ndarray) -> np.ndarray:
        ds = self._handle()[name]
        out_shape = (idx.size,) + tuple(ds.shape[1:])
        if idx.size == 0:
            return np.empty(out_shape, dtype=ds.dtype)
        # h5py wants increasing unique selections: read sorted unique indices, grouped into runs
        # of consecutive indices (one slice read per run), then scatter back to the asked order.
        uniq, inverse = np.unique(idx, return_inverse=True)
        buf = np.empty((uniq.size,) + tuple(ds.shape[1:]), dtype=ds.dtype)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        starts = np.concatenate(([0], breaks))
        stops = np.concatenate((breaks, [uniq.size]))
        for a, b in zip(starts.tolist(), stops.tolist()):
            first = int(uniq[a])
            ds.read_direct(buf, source_sel=np.s_[first : first + (b - a)], dest_sel=np.s_[a:b])
        if uniq.size == idx.size and np.array_equal(uniq, idx):
            return buf
        return buf[inverse.reshape(-1)]

    def read(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) uint8 arrays for ``indices`` in the given order (any order, duplicates allowed)."""
        idx = self._index_array(indices)
        return self._read_dataset("lr", idx), self._read_dataset("hr", idx)

    def read_lr(self, indices: Any) -> np.ndarray:
        """LR patches (n,h,w,3) uint8 for ``indices`` in the given order."""
        return self._read_dataset("lr", self._index_array(indices))

    def read_hr(self, indices: Any) -> np.ndarray:
        """HR patches (n,H,W,3) uint8 for ``indices`` in the given order."""
        return self._read_dataset("hr", self._index_array(indices))

    def indices_of_image(self, image_id: int) -> np.ndarray:
        """Sorted int64 indices of the patches cropped from image ``image_id``."""
        return np.flatnonzero(self.image_id == int(image_id)).astype(np.int64)

    @property
    def scale(self) -> int:
        """Super-resolution factor (HR size / LR size)."""
        return int(self.attrs["scale"])

    @property
    def hr_size(self) -> int:
        """Side of an HR patch in pixels."""
        return int(self.hr_shape[0])

    @property
    def lr_size(self) -> int:
        """Side of an LR patch in pixels."""
        return int(self.lr_shape[0])

    @property
    def image_ids(self) -> np.ndarray:
        """Sorted unique image ids present in the store."""
        return np.unique(self.image_id)


def write_patch_store(
    path: str | os.PathLike,
    lr: np.ndarray,
    hr: np.ndarray,
    image_id: np.ndarray,
    origin: np.ndarray,
    *,
    scale: int | None = None,
    hr_size: int | None = None,
    step: int = 0,
    source: str = "",
    seed: int | None = None,
    **extra_attrs: Any,
) -> Path:
    """Write whole arrays as a patch store in one go (atomic). ``scale``/``hr_size`` default to
    what the shapes imply; ``step`` 0 means "not a sliding-window crop" (e.g. synthetic patches)."""
    hr = np.asarray(hr)
    lr = np.asarray(lr)
    if hr.ndim != 4 or lr.ndim != 4:
        raise ValueError(f"patch store {path}: lr/hr must be (n,h,w,3), got {lr.shape}/{hr.shape}")
    if hr_size is None:
        hr_size = hr.shape[1]
    if scale is None:
        if lr.shape[1] == 0 or hr.shape[1] % lr.shape[1]:
            raise ValueError(
                f"patch store {path}: hr size {hr.shape[1]} is not a multiple of lr size {lr.shape[1]}"
            )
        scale = hr.shape[1] // lr.shape[1]
    with PatchStoreWriter(
        path,
        scale=scale,
        hr_size=hr_size,
        step=step,
        source=source,
        seed=seed,
        extra_attrs=extra_attrs,
    ) as writer:
        writer.append(lr, hr, image_id, origin)
    return Path(path)
