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
