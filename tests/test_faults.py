"""Fault injection: kill -9 the demo workflow (and every job it runs) in the middle of cropping,
condensation and SR training, rerun with --rerun-incomplete, and require the final tables to equal
an uninterrupted run's exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.workflow_helpers import SNAKEMAKE, _env, copy_workflow, snakemake

# A kill point: the workflow is killed as soon as this job's log shows it is working.
KILL_POINTS = [
    ("cropping", "logs/crop_patches.log"),
    ("condensation", "logs/condense_image"),
    ("training", "logs/train_sr"),
]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> bool:
    """True once `path` (a file, or a folder holding a non-empty log) exists while `proc` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and path.stat().st_size > 0:
            return True
        if path.is_dir() and any(p.stat().st_size > 0 for p in path.rglob("*.log")):
            return True
        time.sleep(0.05)
    return False


def _kill_at(work: Path, marker: str, extra_delay: float) -> bool:
    proc = subprocess.Popen(
        SNAKEMAKE + ["--cores", "2"],
        cwd=work,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the jobs die with it
    )
    reached = _wait_for(work / "results" / "demo" / marker, proc, timeout=900)
    if reached:
        time.sleep(extra_delay)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return reached and killed


@pytest.mark.slow
def test_killed_demo_resumes_to_identical_tables(demo_run, tmp_path):
    work = copy_workflow(tmp_path / "faulty")
    survived = []
    for i, (stage, marker) in enumerate(KILL_POINTS):
        if _kill_at(work, marker, extra_delay=0.3 + 0.4 * i):
            survived.append(stage)
        snakemake(["--unlock"], cwd=work)
    snakemake(["--cores", "2", "--rerun-incomplete"], cwd=work, timeout=1500)
    print(f"kill points tried: {len(KILL_POINTS)}, reached and survived: {survived}")
    assert len(survived) >= 2, survived
    expected = pd.read_csv(demo_run / "results/demo/tables/table1.csv")
    got = pd.read_csv(work / "results/demo/tables/table1.csv")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs: a disk that fills up for real (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk case mounts a small tmpfs, which needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _noise_images(folder: Path, n: int, side: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"n{i}.png")
    return folder


def test_full_disk_while_cropping_is_one_line_and_leaves_nothing(small_disk, tmp_path):
    """Once a segfault (rc 139) leaving a new `.store.h5.tmp-<pid>` per retry. Now: free space is
    checked against the store's size before writing; a disk that fills anyway aborts with one
    line and removes the temporary file; stale temporaries of killed attempts are removed."""
    import numpy as np

    from idc.data.store import PatchStoreWriter

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = small_disk / f".store.h5.tmp-{dead.pid}"
    stale.write_bytes(b"\0" * 1000)
    stale_spool = small_disk / f".store.h5.spool-{dead.pid}-abc"
    stale_spool.mkdir()
    photos = _noise_images(tmp_path / "photos", n=3, side=512)  # ~33 MB of patches at 64/16
    proc = subprocess.run(
        SNAKEMAKE[:1] + ["-m", "idc", "crop", str(photos), str(small_disk / "store.h5"), "--hr-size", "64",
                         "--step", "16", "--workers", "2"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not enough free space" in errors[0] and "store.h5" in errors[0], proc.stderr
    assert list(small_disk.iterdir()) == []  # the stale temporaries went, nothing new stayed

    # Written patch by patch (the writer of condensed stores, or an estimate beaten by another
    # writer on the same disk): each write is refused before HDF5 meets a full disk, cleanly.
    rng = np.random.default_rng(1)
    (small_disk / "other.bin").write_bytes(b"\0" * 100_000)
    appended = 0
    with pytest.raises(OSError, match=r"not enough free space for .*store.h5"):
        with PatchStoreWriter(small_disk / "store.h5", scale=4, hr_size=64, step=64, source="t", seed=0) as writer:
            for _ in range(200):  # 200 x 8 x 13 kB of noise: beyond 16 MB half-way
                writer.append(rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
                              rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8), 0, np.zeros((8, 2)))
                appended += 1
    assert 10 < appended < 200  # refused part-way, not at once
    assert [p.name for p in small_disk.iterdir()] == ["other.bin"]
