"""Data-parallel SR training on the CPU (gloo): two ranks with half the batch each train the same
network as one process with the whole batch, and a killed two-rank run resumes (with any rank
count) to the uninterrupted result.

EDSR is the model here because it has no batch statistics: the per-sample loss terms and their
gradients do not depend on which other samples share a rank, so the only difference between one
and two ranks is the order of the floating-point sums.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket

import numpy as np
import pytest
import torch

from idc.sr.cli import train_arguments
from idc.sr.data import StreamSampler
from idc.sr.distributed import World, job_ranks, launch_training, split_batch, world_from_env
from idc.sr.train import TrainingInterrupted
from tests.test_sr_train import _outputs, _train, write_train_data

TINY_EDSR = dict(num_feat=8, num_block=1, upscale=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_train_data(tmp_path_factory.mktemp("ddp_data"), n=6, seed=1)


def _settings(data, out_dir, **over):
    # 6 patches, batch 4: steps cross epoch boundaries in the middle of a rank's share.
    settings = dict(
        model_name="edsr", model_kwargs=TINY_EDSR, store_path=str(data["store"]), out_dir=str(out_dir), steps=7,
        batch_size=4, gt_size=16, lr=2e-3, milestones=[3, 6], gamma=0.5, val_every=3, checkpoint_every=2,
        val_hr_dir=str(data["val_hr"]), val_lr_dir=str(data["val_lr"]), crop_border=2, seed=3, log_every=1,
    )
    settings.update(over)
    return settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raise_signal_at(step_to_stop: int):
    def callback(step: int) -> None:
        if step == step_to_stop:
            signal.raise_signal(signal.SIGUSR1)

    return callback


def _rank_main(rank: int, size: int, port: int, settings: dict, stop: tuple[int, int] | None, results) -> None:
    """One rank, as torchrun would start it (the same environment variables)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    callback = _raise_signal_at(stop[1]) if stop is not None and stop[0] == rank else None
    try:
        _train({**settings, "device": "cpu", "step_callback": callback})
        results.put((rank, "done", None))
    except TrainingInterrupted as err:
        results.put((rank, "interrupted", err.step))
    except BaseException as err:  # reported to the test, which fails with it
        results.put((rank, "error", repr(err)))


def _run_ranks(settings: dict, size: int = 2, stop: tuple[int, int] | None = None) -> dict[int, tuple]:
    """Run ``size`` ranks in fresh processes; ``stop`` = (rank, step): that rank alone gets SIGUSR1."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, size, port, settings, stop, results)) for r in range(size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode is not None, "a rank hung"
    outcome = {}
    while not results.empty():
        rank, status, detail = results.get()
        outcome[rank] = (status, detail)
    assert sorted(outcome) == list(range(size)), outcome
    return outcome


def _assert_same_training(a, b, *, rtol: float, atol: float) -> None:
    weights_a, traj_a, log_a = a
    weights_b, traj_b, log_b = b
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        torch.testing.assert_close(weights_a[key], weights_b[key], rtol=rtol, atol=atol, msg=key)
    steps_a, loss_a = np.array(log_a["loss_curve"]).T
    steps_b, loss_b = np.array(log_b["loss_curve"]).T
    np.testing.assert_array_equal(steps_a, steps_b)
    np.testing.assert_allclose(loss_a, loss_b, rtol=rtol, atol=atol)
    np.testing.assert_array_equal(traj_a["step"], traj_b["step"])
    np.testing.assert_allclose(traj_a["psnr"], traj_b["psnr"], rtol=0, atol=1e-3)


def test_rank_shards_tile_the_single_process_stream():
    n, seed, batch, ranks = 7, 5, 6, 3
    share = split_batch(batch, World(size=ranks))
    start = 4 * batch
    single = iter(StreamSampler(n, seed, start=start))
    shards = [iter(StreamSampler(n, seed, start=start, shards=(r, ranks, share))) for r in range(ranks)]
    for _ in range(10):  # 10 steps, crossing several epoch boundaries
        whole = [next(single) for _ in range(batch)]
        parts = [key for it in shards for key in (next(it) for _ in range(share))]
        assert parts == whole
    with pytest.raises(ValueError, match="not divisible"):
        split_batch(5, World(size=2))
    with pytest.raises(ValueError, match="step boundary"):
        StreamSampler(n, seed, start=3, shards=(0, 2, 2))


def test_world_and_ranks_from_settings():
    assert world_from_env({}) == World()
    assert world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == World(1, 2, 1)
    with pytest.raises(ValueError, match="RANK"):
        world_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    assert job_ranks({"gpu": 0}) == 1
    assert job_ranks({"gpu": 4}) == 4
    assert job_ranks({"gpu": 0, "ranks": 2}) == 2
    with pytest.raises(ValueError, match="resources.ranks"):
        job_ranks({"gpu": 2, "ranks": 4})


def test_two_ranks_with_half_batch_equal_one_process(data, tmp_path):
    single = tmp_path / "single"
    _train({**_settings(data, single), "device": "cpu"})
    double = tmp_path / "double"
    outcome = _run_ranks(_settings(data, double))
    assert outcome == {0: ("done", None), 1: ("done", None)}
    # Only rank 0 wrote outputs, in the one folder.
    assert sorted(p.name for p in double.iterdir()) == ["model.safetensors", "train_log.json", "trajectory.csv"]
    a, b = _outputs(single), _outputs(double)
    assert b[2]["settings"]["ranks"] == 2 and a[2]["settings"]["ranks"] == 1
    _assert_same_training(a, b, rtol=1e-5, atol=1e-6)
    # The comparison can fail: a different batch order (another seed) gives other weights.
    other = tmp_path / "other"
    _train({**_settings(data, other, seed=4), "device": "cpu"})
    with pytest.raises(AssertionError):
        _assert_same_training(a, _outputs(other), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # four two-rank runs, ~30 s on two cores
def test_two_rank_run_stopped_on_one_rank_resumes_with_any_rank_count(data, tmp_path):
    reference = tmp_path / "reference"
    assert _run_ranks(_settings(data, reference)) == {0: ("done", None), 1: ("done", None)}

    # The signal reaches rank 1 only, after step 3: both ranks stop at step 3, rank 0 checkpoints.
    resumed = tmp_path / "resumed"
    outcome = _run_ranks(_settings(data, resumed), stop=(1, 3))
    assert outcome == {0: ("interrupted", 3), 1: ("interrupted", 3)}
    assert not resumed.exists()
    assert _run_ranks(_settings(data, resumed)) == {0: ("done", None), 1: ("done", None)}
    log = _outputs(resumed)[2]
    assert log["resumed_from_step"] == 3
    # Same ranks, same reduction order: equal to the last bit.
    _assert_same_training(_outputs(reference), _outputs(resumed), rtol=0, atol=0)

    # Stopped with two ranks, finished by one process.
    mixed = tmp_path / "mixed"
    assert _run_ranks(_settings(data, mixed), stop=(0, 5)) == {0: ("interrupted", 5), 1: ("interrupted", 5)}
    _train({**_settings(data, mixed), "device": "cpu"})
    assert _outputs(mixed)[2]["resumed_from_step"] == 5
    _assert_same_training(_outputs(reference), _outputs(mixed), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_torchrun_launch_equals_one_process(data, tmp_path, monkeypatch):
    """The launcher the workflow uses: torchrun, two gloo ranks, logs gathered by the caller; it
    leaves nothing in the temporary folder (each launch once left a torchelastic_* folder)."""
    import tempfile

    single = tmp_path / "single"
    _train({**_settings(data, single), "device": "cpu"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    launched = tmp_path / "launched"
    rc = launch_training(*train_arguments({**_settings(data, launched), "device": "cpu"}), ranks=2)
    assert rc == 0
    _assert_same_training(_outputs(single), _outputs(launched), rtol=1e-5, atol=1e-6)
    assert list(scratch.iterdir()) == []


_LAUNCHER = """
import logging, sys, yaml
from idc.sr.cli import train_arguments
from idc.sr.distributed import launch_training
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
sys.exit(launch_training(*train_arguments(yaml.safe_load(open(sys.argv[1]))), ranks=2, threads=2))
"""


@pytest.mark.slow
def test_stop_signal_to_the_launcher_checkpoints_all_ranks_and_the_rerun_resumes(data, tmp_path):
    """SIGTERM to the job's process (as SLURM's pre-timeout chain sends it) goes through torchrun
    to both ranks; rank 0 checkpoints and a rerun continues from that step."""
    import subprocess
    import sys

    import yaml

    from idc.sr.checkpoint import read_manifest
    from idc.sr.train import default_resume_dir

    out = tmp_path / "out"
    # Many steps, no periodic checkpoint: the only checkpoint is the one the signal causes.
    settings = {**_settings(data, out, steps=400, checkpoint_every=10_000, val_every=10_000), "device": "cpu"}
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "step 1/400" in line:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0, "".join(lines)
    manifest = read_manifest(default_resume_dir(out))
    assert manifest is not None and 1 <= manifest["step"] < 400, "".join(lines)
    assert not out.exists()
    assert launch_training(*train_arguments(settings), ranks=2, threads=2) == 0
    assert _outputs(out)[2]["resumed_from_step"] == manifest["step"]


def test_launch_hands_the_ranks_the_same_config(data, tmp_path, monkeypatch, caplog):
    """The file launch_training writes for the ranks gives back the caller's TrainConfig and run
    arguments (the ranks build theirs from it through `python -m idc sr train`)."""
    import dataclasses
    import json
    import logging
    import sys

    import idc.sr.distributed as distributed
    from tests.conftest import PROJECT_ROOT

    cfg, run = train_arguments({**_settings(data, tmp_path / "out"), "device": "cpu"})
    check = ("import dataclasses, json, sys, yaml; from idc.sr.cli import train_arguments; "
             "cfg, run = train_arguments(yaml.safe_load(open(sys.argv[1]))); "
             "print('CFG', json.dumps(dataclasses.asdict(cfg), sort_keys=True)); print('RUN', sorted(run))")
    monkeypatch.setattr(distributed, "torchrun_command", lambda path, ranks: [sys.executable, "-c", check, str(path)])
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    with caplog.at_level(logging.INFO, logger="idc.sr.distributed"):
        assert launch_training(cfg, run, ranks=2) == 0
    assert f"CFG {json.dumps(dataclasses.asdict(cfg), sort_keys=True)}" in caplog.text
    assert f"RUN {sorted(run)}" in caplog.text
