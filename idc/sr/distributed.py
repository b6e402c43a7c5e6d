"""Data-parallel SR training: several processes ("ranks") of one job share each step's batch.

The global batch of the configuration is split into equal per-rank shares; each rank reads its own
contiguous slice of every step's stream positions (see :class:`idc.sr.data.StreamSampler`), and
DistributedDataParallel averages the gradients. With a loss that is a mean over the batch and a
model without batch statistics (EDSR, SwinIR, MambaIRv2 have no BatchNorm), W ranks with B/W
samples each compute the same update as one process with B samples, up to the order of the
floating-point reduction. The data order depends only on (seed, global position), so a checkpoint
written by any number of ranks resumes with any other number.

Ranks are started by ``torchrun`` (:func:`launch_training`), which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`world_from_env` reads them. Only rank 0
validates and writes checkpoints, trajectories and the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from idc.sr.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one training job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The rank layout torchrun (or any launcher setting its variables) gave this process."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return World()
    try:
        world = World(rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]),
                      local_rank=int(env.get("LOCAL_RANK", env["RANK"])))
    except (KeyError, ValueError) as err:
        raise ValueError(f"distributed environment is incomplete or malformed (RANK/WORLD_SIZE): {err}") from None
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ValueError(f"RANK {world.rank} is outside WORLD_SIZE {world.size}")
    return world


def split_batch(batch_size: int, world: World) -> int:
    """Per-rank share of the global batch; it must divide evenly so every rank's mean has the same
    weight in the averaged gradient."""
    if batch_size % world.size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world.size} ranks of this job")
    return batch_size // world.size


def rank_device(device: torch.device, world: World) -> torch.device:
    """One CUDA device per rank (by local rank); CPU ranks share the CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise ValueError(f"local rank {world.local_rank} has no GPU: {torch.cuda.device_count()} visible")
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the job's process group (NCCL for CUDA, gloo for CPU) for the duration of the block."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Rank 0 validates alone while the others wait in their next collective: allow for a long
    # validation of a large network before the wait counts as a hang.
    dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size,
                            timeout=datetime.timedelta(minutes=60))
    logger.info("rank %d of %d joined the %s process group", world.rank, world.size, backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """Mean of a scalar tensor over ranks (itself when there is one rank)."""
    if not world.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.size


def all_max(value: int, world: World, device: torch.device) -> int:
    """Largest of an integer over ranks: the ranks agree on a stop when any of them got a signal."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def check_same(value: int, world: World, device: torch.device, what: str) -> None:
    """Raise when the ranks do not hold the same integer (e.g. they resumed different checkpoints)."""
    if not world.distributed:
        return
    low, high = -all_max(-value, world, device), all_max(value, world, device)
    if low != high:
        raise RuntimeError(f"ranks disagree on {what}: {low} .. {high}")


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# Launching


def job_ranks(resources: Mapping[str, Any]) -> int:
    """Ranks of one training job from its ``resources``: ``ranks`` when set, else one per GPU."""
    gpus, ranks = int(resources.get("gpu", 0) or 0), resources.get("ranks")
    if ranks is None:
        return max(1, gpus)
    if gpus > 0 and ranks != gpus:
        raise ValueError(f"resources.ranks ({ranks}) must equal resources.gpu ({gpus}): one GPU per rank")
    return int(ranks)


def check_training_ranks(config: Mapping[str, Any]) -> None:
    """ValueError naming the first teacher or model whose ranks do not fit its GPUs or its batch."""
    for section in ("teachers", "models"):
        for name, spec in config.get(section, {}).items():
            key = f"{section}.{name}"
            try:
                ranks = job_ranks(spec.get("resources", {}))
            except ValueError as err:
                raise ValueError(f"config key {key}: {err}") from None
            batch = spec.get("train", {}).get("batch_size")
            if batch is not None and batch % ranks:
                raise ValueError(f"config key {key}.train.batch_size: {batch} is not divisible by its {ranks} ranks")


def torchrun_command(config_path: str | os.PathLike, ranks: int) -> list[str]:
    """``torchrun --standalone`` on this node, one process per rank, each running ``idc sr train``.
    ``--standalone`` picks a free rendezvous port, so several such jobs may share a node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
            "-m", "idc", "sr", "train", str(config_path)]


def _plain(value: Any) -> Any:
    """Settings as YAML-safe containers (paths as strings, tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def launch_training(cfg: TrainConfig, run: Mapping[str, Any], ranks: int, *, threads: int | None = None) -> int:
    """Run :func:`idc.sr.train.train_sr` ``(cfg, **run)`` under torchrun with ``ranks`` processes
    and return its exit status; every line the ranks print is logged here. ``threads``: the job's
    CPU cores (default: all of this machine's), shared out as each rank's intra-op threads.

    A stop signal (SIGTERM, SIGUSR1, SIGINT) reaching this process is passed to torchrun as SIGTERM,
    which forwards it to the ranks: they agree on a step, rank 0 checkpoints, and a rerun resumes.
    """
    import yaml

    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    # One private folder for the launch, removed at the end: torchrun writes its own folder
    # (torchelastic_*) under TMPDIR and leaves it behind, one per launch.
    launch_dir = Path(tempfile.mkdtemp(prefix="idc-train-"))
    config_path = launch_dir / "train.yaml"
    with open(config_path, "w") as fh:
        # The flat file of `python -m idc sr train` (idc.sr.cli.train_arguments splits it again).
        yaml.safe_dump(_plain({**dataclasses.asdict(cfg), **run}), fh)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(launch_dir)}
    # Each rank gets its share of the job's CPUs for its intra-op threads.
    env["OMP_NUM_THREADS"] = str(max(1, (threads or os.cpu_count() or 1) // ranks))
    command = torchrun_command(config_path, ranks)
    logger.info("launching %d ranks: %s", ranks, " ".join(command))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        logger.warning("%s received: asking the ranks to checkpoint and stop", signal.Signals(signum).name)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    stops = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    in_main = threading.current_thread() is threading.main_thread()  # handlers need the main thread
    previous = {s: signal.signal(s, forward) for s in stops} if in_main else {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            logger.info("| %s", line.rstrip())
        rc = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(launch_dir, ignore_errors=True)
    logger.info("torchrun exited with status %d", rc)
    return rc
