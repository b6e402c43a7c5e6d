"""The ``sr`` commands end to end in a subprocess, including a real SIGTERM and a rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from idc.data.imresize import imresize_uint8
from idc.data.store import write_patch_store
from tests.conftest import PROJECT_ROOT


def _run(args, **kwargs):
    # One intra-op thread: on a small shared machine spinning threads slow tiny convolutions ~20x.
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "idc", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.fixture
def train_config(tmp_path):
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    lr = np.stack([imresize_uint8(h, 0.25) for h in hr])
    store = write_patch_store(tmp_path / "s.h5", lr, hr, np.arange(6), np.zeros((6, 2), np.int64), source="t")
    config = dict(model_name="edsr", model_kwargs=dict(num_feat=8, num_block=1), store_path=str(store),
                  steps=200, batch_size=2, gt_size=16, lr=1e-3, milestones=[100], checkpoint_every=20,
                  val_every=1000, seed=3, log_every=50)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sigterm_checkpoints_and_rerun_finishes_the_same_run(train_config, tmp_path):
    out_full, out_split = tmp_path / "full", tmp_path / "split"
    full = _run(["sr", "train", str(train_config), "--set", f"out_dir={out_full}"])
    assert full.wait(timeout=300) == 0, full.stdout.read()

    proc = _run(["sr", "train", str(train_config), "--set", f"out_dir={out_split}"])
    manifest = tmp_path / "split.resume" / "manifest.json"
    deadline = time.monotonic() + 240
    while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, log
    assert "rerun to continue" in log
    assert not (out_split / "model.safetensors").exists()

    rerun = _run(["sr", "train", str(train_config), "--set", f"out_dir={out_split}"])
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    assert "resuming from step" in log
    a, b = load_file(str(out_full / "model.safetensors")), load_file(str(out_split / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_config_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name: edsr\nstepz: 3\n")
    proc = _run(["sr", "train", str(path)])
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1
    assert out.strip().splitlines() == [out.strip().splitlines()[-1]] and "stepz" in out
