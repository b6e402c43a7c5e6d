"""Downloads against a local HTTP server (127.0.0.1, built by the test): success, resume after a
cut connection, checksum mismatch, unsafe archive members, DIV2K local copies."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from idc.data.download import (
    DownloadError,
    download,
    fetch_div2k,
    fetch_div2k_parts,
    safe_extract,
    sha256_file,
    verify_div2k_dir,
)
from idc.data.images import write_png


class _Server:
    """Serves in-memory files with Range support; can cut the first response(s) short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, list[int]] = {}  # path -> byte counts at which to drop, in order
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_range = False  # behave like a server without Range support
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if outer.ignore_range:
                    rng = None
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cuts = outer.cut_after.get(self.path)
                if cuts:
                    self.wfile.write(body[: cuts.pop(0)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as srv:
        yield srv


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_download_success(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/a.bin"] = data
    sha = hashlib.sha256(data).hexdigest()
    out = download(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha, retries=0)
    assert out.read_bytes() == data and sha256_file(out) == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    n_requests = len(server.requests)
    download(
        server.url + "/a.bin", tmp_path / "a.bin", sha256=sha
    )  # present and verified: no request
    assert len(server.requests) == n_requests


def test_resume_after_cut_connection(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/b.bin"] = data
    server.cut_after["/b.bin"] = [100_000, 50_000]  # two dropped connections, then success
    out = download(
        server.url + "/b.bin",
        tmp_path / "b.bin",
        sha256=hashlib.sha256(data).hexdigest(),
        retries=3,
        backoff_s=0.01,
        timeout=5,
    )
    assert out.read_bytes() == data
    ranges = [r for p, r in server.requests if p == "/b.bin"]
    assert ranges == [None, "bytes=100000-", "bytes=150000-"]


def test_server_without_range_restarts(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    server.files["/r.bin"] = data
    server.cut_after["/r.bin"] = [70_000]
    server.ignore_range = True
    out = download(
        server.url + "/r.bin",
        tmp_path / "r.bin",
        sha256=hashlib.sha256(data).hexdigest(),
        retries=2,
        backoff_s=0.01,
        timeout=5,
    )
    assert out.read_bytes() == data


def test_retries_are_bounded(server: _Server, tmp_path: Path) -> None:
    server.files["/c.bin"] = _payload(10_000)
    server.cut_after["/c.bin"] = [10, 10, 10, 10]
    with pytest.raises(DownloadError, match="gave up after 2 attempts"):
        download(server.url + "/c.bin", tmp_path / "c.bin", retries=1, backoff_s=0.01, timeout=5)
    assert not (tmp_path / "c.bin").exists()
    with pytest.raises(DownloadError, match="404"):
        download(server.url + "/missing.bin", tmp_path / "m.bin", retries=3, backoff_s=0.01)


def test_checksum_mismatch(server: _Server, tmp_path: Path) -> None:
    server.files["/d.zip"] = _zip_bytes({"x.txt": b"hello"})
    with pytest.raises(ValueError, match="checksum mismatch.*d.zip"):
        download(server.url + "/d.zip", tmp_path / "d.zip", sha256="0" * 64, retries=0)
    assert list(tmp_path.iterdir()) == []  # neither the final file nor the part file remains


def test_safe_extract_zip_and_tar(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(_zip_bytes({"top/1.txt": b"one", "top/sub/2.txt": b"two"}))
    out = safe_extract(tmp_path / "a.zip", tmp_path / "out_zip")
    assert (out / "top" / "sub" / "2.txt").read_bytes() == b"two"
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("top/1.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"one"))
    out = safe_extract(tmp_path / "a.tar.gz", tmp_path / "out_tar")
    assert (out / "top" / "1.txt").read_bytes() == b"one"


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt", "C:/evil.txt"]
)
def test_unsafe_member_names_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "bad.zip").write_bytes(_zip_bytes({"fine.txt": b"x", name: b"evil"}))
    with pytest.raises(ValueError, match="unsafe member"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    with tarfile.open(tmp_path / "bad.tar", "w") as tf:
        info = tarfile.TarInfo(name)
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(ValueError, match="unsafe member"):
        safe_extract(tmp_path / "bad.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar", "bad.zip"]


def test_links_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "link.tar", "w") as tf:
        info = tarfile.TarInfo("dir/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(ValueError, match="link or special"):
        safe_extract(tmp_path / "link.tar", tmp_path / "out")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "link.zip").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="link or special"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out")


def test_truncated_archive(tmp_path: Path) -> None:
    data = _zip_bytes({"a.bin": _payload(50_000)})
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.zip"):
        safe_extract(tmp_path / "cut.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _fake_div2k(folder: Path, n: int = 800, suffix: str = ".png", first: int = 1) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    for i in range(first, first + n):
        write_png(folder / f"{i:04d}{suffix}", img, compress_level=0)


def test_div2k_local_dir(tmp_path: Path) -> None:
    local = tmp_path / "DIV2K_train_HR"
    _fake_div2k(local)
    assert fetch_div2k(tmp_path / "dl", local_dir=local) == local
    assert not (tmp_path / "dl").exists()  # used in place, nothing copied
    (local / "0417.png").unlink()
    with pytest.raises(ValueError, match="lacks 1 of 800 files.*0417.png"):
        fetch_div2k(tmp_path / "dl", local_dir=local)
    (local / "0417.png").write_text("garbage")
    with pytest.raises(ValueError, match="0417.png"):
        verify_div2k_dir(local)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fetch_div2k(tmp_path / "dl", local_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown DIV2K part"):
        fetch_div2k_parts(tmp_path / "dl", parts=["train_LR_x8"])


def test_div2k_download_from_mirror(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A miniature "valid_HR" archive (100 tiny PNGs) served locally; size and checksum patched in.
    import dataclasses

    import idc.data.download as dl

    src = tmp_path / "src" / "DIV2K_valid_HR"
    _fake_div2k(src, n=100, first=801)
    members = {f"DIV2K_valid_HR/{p.name}": p.read_bytes() for p in sorted(src.iterdir())}
    archive = _zip_bytes(members)
    spec = dataclasses.replace(
        dl.DIV2K_PARTS["valid_HR"], size=len(archive), sha256=hashlib.sha256(archive).hexdigest()
    )
    monkeypatch.setitem(dl.DIV2K_PARTS, "valid_HR", spec)
    server.files["/div2k/DIV2K_valid_HR.zip"] = archive
    server.cut_after["/div2k/DIV2K_valid_HR.zip"] = [len(archive) // 3]
    local_train = tmp_path / "train"
    _fake_div2k(local_train)
    out = tmp_path / "dl"
    parts = dl.fetch_div2k_parts(
        out,
        parts=["train_HR", "valid_HR"],
        local_dirs={"train_HR": local_train},
        base_url=server.url + "/div2k/",
        backoff_s=0.01,
    )
    assert parts["train_HR"] == local_train
    assert parts["valid_HR"] == out / "DIV2K_valid_HR"
    assert len(list(parts["valid_HR"].iterdir())) == 100
    assert sorted(p.name for p in out.iterdir()) == [
        "DIV2K_valid_HR"
    ]  # archive and staging removed
    n_requests = len(server.requests)
    again = dl.fetch_div2k_parts(out, parts=["valid_HR"], base_url=server.url + "/div2k/")
    assert again["valid_HR"] == out / "DIV2K_valid_HR" and len(server.requests) == n_requests
