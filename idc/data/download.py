"""Downloads that survive bad networks, and archive extraction that cannot escape its folder.

* :func:`download`: streams to ``<name>.part``, resumes with an HTTP ``Range`` request after a cut
  connection (bounded retries with back-off), verifies the SHA-256 before the file gets its final
  name. A finished file whose checksum matches is not downloaded again.
* :func:`safe_extract`: zip or tar; refuses absolute paths, ``..`` components, links and special
  files before writing anything; extracts into a temporary folder renamed when complete.
* :func:`fetch_div2k`: the official DIV2K archives (URLs and SHA-256 from tensorflow-datasets'
  checksums), or a verified local copy used in place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from idc.atomic import move_into_place, staging_folder
from idc.data.images import image_size
from idc.progress import ProgressLog

__all__ = [
    "DIV2K_BASE_URL",
    "DIV2K_PARTS",
    "DownloadError",
    "sha256_file",
    "download",
    "safe_extract",
    "verify_div2k_dir",
    "fetch_div2k_parts",
    "fetch_div2k",
]

logger = logging.getLogger(__name__)

DIV2K_BASE_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"


@dataclass(frozen=True)
class Div2kPart:
    """One official DIV2K archive: file name, size, SHA-256, folder inside, expected file names."""

    archive: str
    size: int
    sha256: str
    folder: str  # path of the image folder inside the archive
    first: int
    last: int
    suffix: str  # file name = f"{index:04d}{suffix}"

    def file_names(self) -> list[str]:
        return [f"{i:04d}{self.suffix}" for i in range(self.first, self.last + 1)]


DIV2K_PARTS: dict[str, Div2kPart] = {
    "train_HR": Div2kPart(
        "DIV2K_train_HR.zip",
        3_530_603_713,
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
        "DIV2K_train_HR",
        1,
        800,
        ".png",
    ),
    "valid_HR": Div2kPart(
        "DIV2K_valid_HR.zip",
        448_993_893,
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
        "DIV2K_valid_HR",
        801,
        900,
        ".png",
    ),
    "train_LR_bicubic_X4": Div2kPart(
        "DIV2K_train_LR_bicubic_X4.zip",
        246_914_039,
        "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a",
        "DIV2K_train_LR_bicubic/X4",
        1,
        800,
        "x4.png",
    ),
}


class DownloadError(OSError):
    """The server could not deliver the file within the allowed retries."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _fetch_once(url: str, part: Path, timeout: float, chunk_size: int) -> int | None:
    """One request: append to ``part`` from its current size. Returns the total size announced by
    the server (None if unknown). Raises on network errors (the caller retries)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "idc-workflow"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the part file is already whole
            total = err.headers.get("Content-Range", "").rpartition("/")[2]
            return int(total) if total.isdigit() else have
        raise
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        if have and status == 206:
            content_range = response.headers.get("Content-Range", "")
            total_txt = content_range.rpartition("/")[2]
            total = int(total_txt) if total_txt.isdigit() else None
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(
                    f"{url}: server answered range {content_range!r} to a request from byte {have}"
                )
            mode = "ab"
        else:
            if have:
                logger.info("%s: server ignores Range, downloading from the start", url)
            total = int(length) if length is not None else None
            mode = "wb"
        start = have if mode == "ab" else 0
        progress = ProgressLog(logger, f"download {part.name.removesuffix('.part')}",
                               None if total is None else total // 2**20, unit="MiB",
                               start=start // 2**20)
        done = start
        with open(part, mode) as fh:
            while block := response.read(chunk_size):
                fh.write(block)
                done += len(block)
                if done // 2**20 > progress.done:
                    progress.update(done // 2**20 - progress.done)
    return total


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff_s: float = 2.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``: resumable, retried, checksum-verified, atomic.

    Bytes go to ``dest.part``; after a dropped connection the next attempt asks for the rest with
    ``Range: bytes=<have>-`` (a server that ignores Range restarts the file). At most ``retries``
    attempts after the first, waiting ``backoff_s * 2**k`` (capped at 60 s). When complete, the
    SHA-256 (if given) is checked: a mismatch deletes the part file and raises ValueError. Only then
    is the file renamed to ``dest``. An existing ``dest`` with the right checksum is kept as is.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if sha256 is None or sha256_file(dest) == sha256.lower():
            logger.info("%s already present, not downloading", dest)
            return dest
        raise ValueError(
            f"existing file {dest} does not match its SHA-256 {sha256}: delete it to download again"
        )
    part = dest.with_name(dest.name + ".part")
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = min(backoff_s * 2 ** (attempt - 1), 60.0)
            logger.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                url,
                attempt,
                retries + 1,
                last_error,
                wait,
            )
            time.sleep(wait)
        try:
            start = time.monotonic()
            total = _fetch_once(url, part, timeout, chunk_size)
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            socket.timeout,
            TimeoutError,
        ) as err:
            if (
                isinstance(err, urllib.error.HTTPError)
                and 400 <= err.code < 500
                and err.code not in (408, 429)
            ):
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            last_error = err
            continue
        have = part.stat().st_size if part.exists() else 0
        expected = size if size is not None else total
        if expected is not None and have < expected:
            last_error = ConnectionError(f"connection closed at {have} of {expected} bytes")
            continue
        if expected is not None and have > expected:
            part.unlink()
            raise ValueError(
                f"download of {url} is larger ({have} B) than expected ({expected} B); deleted"
            )
        logger.info(
            "downloaded %s (%d bytes, last attempt %.1f s)", url, have, time.monotonic() - start
        )
        break
    else:
        raise DownloadError(
            f"{url}: gave up after {retries + 1} attempts ({last_error}); partial data kept in {part}"
        )
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256.lower():
            part.unlink()
            raise ValueError(
                f"checksum mismatch for {url}: expected SHA-256 {sha256}, got {got} (file deleted)"
            )
    move_into_place(part, dest)  # synced first: a crash cannot leave a short file under dest
    return dest


def _check_member_name(name: str, archive: Path) -> PurePosixPath:
    """Refuse absolute paths, drive letters, backslash tricks and ``..`` components."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]) or ".." in posix.parts:
        raise ValueError(f"unsafe member {name!r} in archive {archive} (absolute path or '..')")
    return posix


# Extracted bytes allowed per compressed byte. Images (PNG, JPEG) hardly compress further, so
# real test-set archives stay near 1; a bomb (1 MB of zeros -> 1 GB) is far above.
MAX_EXPANSION = 20
MIN_EXTRACT_LIMIT = 64 << 20  # small archives (a few tiny images) may expand more than 20x
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _check_layout(entries: list[tuple[PurePosixPath, bool, int]], archive: Path, limit: int) -> None:
    """Before writing: total size within `limit`, no member given twice, no file where another
    member needs a folder (entries: path, is folder, size)."""
    total = sum(size for _, is_dir, size in entries if not is_dir)
    if total > limit:
        raise ValueError(
            f"archive {archive} would extract {total / 1e6:,.1f} MB, more than the limit "
            f"{limit / 1e6:,.1f} MB ({MAX_EXPANSION}x its size; a decompression bomb?)"
        )
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for path, is_dir, _ in entries:
        folders.update(path.parents)
        if is_dir:
            folders.add(path)
        elif path in files:
            raise ValueError(f"archive {archive} holds member {str(path)!r} twice")
        else:
            files.add(path)
    clash = sorted(files & folders)
    if clash:
        raise ValueError(f"archive {archive}: member {str(clash[0])!r} is both a file and a folder")


def _zip_members(zf: zipfile.ZipFile, archive: Path, limit: int) -> None:
    entries = []
    for info in zf.infolist():
        path = _check_member_name(info.filename, archive)
        # Unix file type bits (0 when the zip was not made on Unix or does not record them).
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ValueError(
                f"unsafe member {info.filename!r} in archive {archive} (link or special file)"
            )
        if info.flag_bits & 0x1:
            raise ValueError(f"encrypted member {info.filename!r} in archive {archive} (not supported)")
        if info.compress_type not in _ZIP_METHODS:
            raise ValueError(
                f"member {info.filename!r} in archive {archive} uses compression method "
                f"{info.compress_type}, which is not supported (stored, deflate, bzip2, lzma)"
            )
        entries.append((path, info.is_dir(), info.file_size))
    _check_layout(entries, archive, limit)


def _tar_members(tf: tarfile.TarFile, archive: Path, limit: int) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    entries = []
    for m in members:
        path = _check_member_name(m.name, archive)
        if not (m.isfile() or m.isdir()):
            raise ValueError(
                f"unsafe member {m.name!r} in archive {archive} (link or special file)"
            )
        entries.append((path, m.isdir(), m.size))
    _check_layout(entries, archive, limit)
    return members


def safe_extract(
    archive: str | os.PathLike, dest_dir: str | os.PathLike, *, max_bytes: int | None = None
) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir`` safely and atomically.

    Every member is checked before anything is written: names, type, encryption, compression
    method, file/folder clashes and the total size, at most ``max_bytes`` (default
    ``MAX_EXPANSION`` times the archive's size, at least ``MIN_EXTRACT_LIMIT``). Extraction
    happens in a temporary sibling folder that is renamed to ``dest_dir`` at the end (an existing
    ``dest_dir`` is replaced). Corrupt or truncated archives raise ValueError naming the archive.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    if max_bytes is None:
        max_bytes = max(MAX_EXPANSION * archive.stat().st_size, MIN_EXTRACT_LIMIT)
    tmp = staging_folder(dest_dir)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _zip_members(zf, archive, max_bytes)
                for info in zf.infolist():
                    zf.extract(info, tmp)
        else:
            try:
                tf = tarfile.open(archive)
            except tarfile.TarError:
                raise ValueError(
                    f"not a readable zip or tar archive (corrupt or truncated?): {archive}"
                ) from None
            with tf:
                members = _tar_members(tf, archive, max_bytes)
                for m in members:
                    target = tmp / m.name
                    if m.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None  # regular file
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        os.replace(tmp, dest_dir)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError, RuntimeError) as err:
        # NotImplementedError/RuntimeError: zipfile's words for what it cannot decode.
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"corrupt or unsupported archive {archive}: {err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest_dir


def verify_div2k_dir(path: str | os.PathLike, part: str = "train_HR") -> Path:
    """Check that ``path`` holds the DIV2K ``part`` (e.g. 800 files 0001.png..0800.png for
    train_HR), each a readable 8-bit image (header check). One-line error otherwise."""
    path = Path(path)
    spec = DIV2K_PARTS[part]
    if not path.is_dir():
        raise FileNotFoundError(f"DIV2K {part} folder not found: {path}")
    names = spec.file_names()
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise ValueError(
            f"DIV2K {part} folder {path} lacks {len(missing)} of {len(names)} files (first: {missing[0]})"
        )
    for n in names:
        image_size(path / n)  # raises ValueError naming the file when unreadable
    return path


def fetch_div2k_parts(
    out_dir: str | os.PathLike,
    *,
    parts: Iterable[str] = ("train_HR",),
    local_dirs: dict[str, str | os.PathLike] | None = None,
    base_url: str = DIV2K_BASE_URL,
    retries: int = 5,
    backoff_s: float = 2.0,
    keep_archives: bool = False,
) -> dict[str, Path]:
    """Image folder of each DIV2K part, downloading and extracting what is not there yet.

    ``local_dirs[part]`` points to an existing copy, verified and used in place. Downloads go to
    ``out_dir/<archive>``; the image folder keeps the archive's layout: ``out_dir/DIV2K_train_HR``,
    ``out_dir/DIV2K_valid_HR``, ``out_dir/DIV2K_train_LR_bicubic/X4``. It is verified in a staging
    folder and renamed into place. Archives are deleted after a successful extraction unless
    ``keep_archives``.
    """
    out_dir = Path(out_dir)
    local_dirs = dict(local_dirs or {})
    unknown = [p for p in list(parts) + list(local_dirs) if p not in DIV2K_PARTS]
    if unknown:
        raise ValueError(f"unknown DIV2K part(s) {unknown}; known: {sorted(DIV2K_PARTS)}")
    result: dict[str, Path] = {}
    for part in parts:
        spec = DIV2K_PARTS[part]
        if part in local_dirs:
            result[part] = verify_div2k_dir(local_dirs[part], part)
            logger.info("using local DIV2K %s at %s", part, result[part])
            continue
        image_dir = out_dir / spec.folder  # the archive's own layout, e.g. out_dir/DIV2K_train_HR
        if image_dir.is_dir():
            result[part] = verify_div2k_dir(image_dir, part)
            continue
        archive = download(
            base_url.rstrip("/") + "/" + spec.archive,
            out_dir / spec.archive,
            sha256=spec.sha256,
            size=spec.size,
            retries=retries,
            backoff_s=backoff_s,
        )
        # PNG files do not shrink in a zip: twice the known archive size bounds the real content.
        staging = safe_extract(archive, out_dir / f".{part}.extracted", max_bytes=2 * spec.size)
        try:
            found = staging / spec.folder
            if not found.is_dir():
                raise ValueError(f"archive {archive} has no folder {spec.folder}")
            verify_div2k_dir(found, part)
            image_dir.parent.mkdir(parents=True, exist_ok=True)
            if image_dir.exists():
                shutil.rmtree(image_dir)
            os.replace(
                found, image_dir
            )  # same file system: the folder appears complete or not at all
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result[part] = image_dir
        if not keep_archives:
            archive.unlink()
    return result


def fetch_div2k(
    out_dir: str | os.PathLike,
    *,
    parts: Iterable[str] = ("train_HR",),
    local_dir: str | os.PathLike | None = None,
    base_url: str = DIV2K_BASE_URL,
    retries: int = 5,
) -> Path:
    """DIV2K training HR folder (``out_dir/DIV2K_train_HR``, 0001.png..0800.png), downloaded or, when
    ``local_dir`` is given, that folder verified and used in place. Other ``parts``
    (``valid_HR``, ``train_LR_bicubic_X4``) are fetched alongside; see :func:`fetch_div2k_parts`."""
    parts = list(parts)
    if "train_HR" not in parts:
        parts.insert(0, "train_HR")
    local = {"train_HR": local_dir} if local_dir is not None else None
    return fetch_div2k_parts(
        out_dir, parts=parts, local_dirs=local, base_url=base_url, retries=retries
    )["train_HR"]
