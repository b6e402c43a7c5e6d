"""CLI commands end in one line (issue 23, classes 9, 12, 13): run-summary refuses another run's
folder or a missing one; a stop signal to condense-image ends with one line and exit code 143;
crop's pool workers end with their parent."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.workflow_helpers import _env, one_error_line, run_idc


# ---------------------------------------------------------------- run-summary (class 9)
@pytest.fixture
def demo_results(tmp_path):
    results = tmp_path / "results" / "demo"
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "table1.md").write_text("| a | b |\n")
    return results


def _config(tmp_path, content) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.mark.parametrize("case, content, needles", [
    ("another run", {"run": "mini"}, ("results folder", "not the folder of run `mini`")),
    ("a list", [1, 2], ("must hold a mapping (got list)",)),
    ("a scalar", 3, ("must hold a mapping (got int)",)),
    ("no run", {"seed": 0}, ("config key run",)),
])
def test_run_summary_refuses_a_config_of_another_run(demo_results, tmp_path, case, content, needles):
    """It once wrote "Run `mini`" above the demo's tables, and a list config gave a traceback."""
    proc = run_idc("run-summary", str(demo_results), "--configfile", _config(tmp_path, content), "--command", "x")
    one_error_line(proc, *needles)


def test_run_summary_refuses_a_missing_results_folder(tmp_path):
    """It once gave rc 0 and an empty record."""
    missing = tmp_path / "results" / "demo"
    proc = run_idc("run-summary", str(missing), "--configfile", _config(tmp_path, {"run": "demo"}), "--command", "x")
    one_error_line(proc, f"results folder {missing} does not exist")


def test_run_summary_of_the_matching_run_is_written(demo_results, tmp_path):
    proc = run_idc("run-summary", str(demo_results), "--configfile", _config(tmp_path, {"run": "demo"}),
                "--command", "x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Run `demo`" in proc.stdout and "| a | b |" in proc.stdout


def test_run_summary_names_the_commit_of_the_checkout_given(demo_results, tmp_path):
    """A run made in another checkout (a worktree at an older commit) is recorded with that commit."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "run"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    config = _config(tmp_path, {"run": "demo"})
    proc = run_idc("run-summary", str(demo_results), "--configfile", config, "--command", "x", "--repo", str(checkout))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"- commit: `{head}`" in proc.stdout
    one_error_line(run_idc("run-summary", str(demo_results), "--configfile", config, "--command", "x",
                   "--repo", str(tmp_path / "nowhere")), "is not a git checkout")


# ---------------------------------------------------------------- stop signals (classes 12, 13)
def _wait_for(condition, proc, timeout=90.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"ended early with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_sigterm_to_condense_image_is_one_line_and_exit_143(tmp_path):
    """SIGTERM once printed a whole CondensationInterrupted traceback; `sr train` exits 143."""
    import json
    import signal

    import numpy as np
    import torch

    from idc.archs import build_model, save_model
    from idc.data.store import write_patch_store
    from tests.test_condense_stage import TINY_SWINIR

    rng = np.random.default_rng(0)
    store = write_patch_store(tmp_path / "real.h5", rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
                              rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8), np.zeros(12, np.int64),
                              np.zeros((12, 2), np.int64), step=8, source="t", seed=None)
    torch.manual_seed(0)
    extractor = save_model(tmp_path / "t.safetensors", build_model("swinir", **TINY_SWINIR), "swinir", TINY_SWINIR)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(dict(steps=100000, warmup=10, assign_interval=1, assign_times=2, channels=8, kernel=3,
                                   num_freqs=16, groups=2, log_every=1000, checkpoint_every=3, milestones=[99990],
                                   ratio=0.2)))
    resume = tmp_path / "resume"
    proc = subprocess.Popen([sys.executable, "-m", "idc", "condense-image", "--store", str(store), "--image-id", "0",
                             "--extractor", str(extractor), "--out", str(tmp_path / "s.npy"), "--log",
                             str(tmp_path / "s.json"), "--config", str(cfg), "--device", "cpu",
                             "--resume-dir", str(resume)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(lambda: (resume / "s.npy.ckpt").is_file(), proc)  # inside the loop: a checkpoint exists
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in out + err, err[-3000:]
    lines = [line for line in err.splitlines() if "interrupted by SIGTERM" in line]
    assert len(lines) == 1 and "rerun to continue" in lines[0]
    assert not (tmp_path / "s.npy").exists()


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def busy_crop(tmp_path):
    """A crop with two workers and enough patches to be stopped in the middle (72 photos, about
    94 000 pairs: some seconds on two cores, so the signal cannot arrive after the end)."""
    import numpy as np
    from PIL import Image

    hr = tmp_path / "HR"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(72):
        Image.fromarray(rng.integers(0, 256, (256, 384, 3), dtype=np.uint8)).save(hr / f"{i:03d}.png", compress_level=0)
    out = tmp_path / "out" / "s.h5"

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "idc", "crop", str(hr), str(out), "--hr-size", "32", "--step",
                                 "8", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        _wait_for(lambda: len(_children(proc.pid)) >= 2 and any(out.parent.glob(".s.h5.tmp-*")), proc)
        return proc, _children(proc.pid)

    return start, out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_crop_ends_its_workers_and_is_one_line(busy_crop):
    """SIGTERM to `crop --workers 2` once left both pool workers running, orphaned."""
    import signal
    import time

    start, out = busy_crop
    proc, workers = start()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: cropping stopped by SIGTERM; nothing was written, rerun to crop"]
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
    assert list(out.parent.iterdir()) == []  # no store, no temporary file, no spool


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc")
def test_crop_workers_die_with_a_killed_parent(busy_crop):
    """Even SIGKILL, which no handler sees, leaves no worker behind."""
    import signal
    import time

    start, _ = busy_crop
    proc, workers = start()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
