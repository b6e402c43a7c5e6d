"""Training of an SR network on a patch store: L1 loss, Adam + MultiStepLR, optional EMA, validation
PSNR trajectory, and checkpoints that let an interrupted run continue as if it never stopped.

The optimisation itself (:func:`train_step`, :func:`ema_update`, :func:`run_steps`) is free of file
I/O; :func:`train_sr` wires it to the patch store, the validation images, checkpoints and outputs.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from idc.atomic import atomic_write_text
from idc.data.indices import load_indices
from idc.device import resolve_device
from idc.provenance import PROVENANCE_KEY, provenance
from idc.runloop import (
    NonFiniteLossError,
    RunInterrupted,
    file_identity,
    file_sha256,
    fingerprint_digest,
    ignore_stop_signals,
    stop_signals,
)
from idc.sr import checkpoint as ckpt
from idc.sr.config import TrainConfig
from idc.sr.data import PatchPairDataset, StreamSampler
from idc.sr.distributed import (
    World,
    all_max,
    all_mean,
    barrier,
    check_same,
    process_group,
    rank_device,
    split_batch,
    world_from_env,
)
from idc.sr.test import evaluate_images, load_test_pair, pair_test_images, write_csv_atomic

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 30.0


class TrainingInterrupted(RunInterrupted):
    """A stop signal arrived; the state was checkpointed and a rerun will continue from it."""

    def __init__(self, signum: int, step: int, resume_dir: Path) -> None:
        self.signum, self.step, self.resume_dir = signum, step, resume_dir
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: checkpointed at step {step} in {resume_dir}; rerun to continue")


@dataclass
class TrainState:
    """Everything that changes during training and must survive an interruption."""

    model: nn.Module
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Any  # torch.amp.GradScaler
    step: int = 0
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    # Running sum and count of the losses since the last loss-curve point.
    loss_window: tuple[float, int] = (0.0, 0)
    wall_time: float = 0.0
    # What the training forward runs through: the DistributedDataParallel wrapper of ``model`` in a
    # data-parallel job (it averages the gradients over ranks), else None (``model`` itself).
    wrapped: nn.Module | None = None


# ---------------------------------------------------------------------------------------------
# Pure optimisation pieces


def build_state(model: nn.Module, cfg: TrainConfig, *, amp_dtype: torch.dtype | None) -> TrainState:
    """Optimiser, scheduler, EMA copy and gradient scaler for ``model`` (already on its device)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
    ema = None
    if cfg.ema_decay > 0:
        ema = copy.deepcopy(model).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
    device_type = next(model.parameters()).device.type
    # Loss scaling is needed only for float16; bfloat16 has float32's exponent range.
    enabled = amp_dtype == torch.float16
    if hasattr(torch.amp, "GradScaler"):
        scaler = torch.amp.GradScaler(device_type, enabled=enabled)
    else:  # torch < 2.3
        scaler = torch.cuda.amp.GradScaler(enabled=enabled)
    return TrainState(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler, scaler=scaler)


def train_step(
    model: nn.Module,
    lq: torch.Tensor,
    gt: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    *,
    step: int,
    amp_dtype: torch.dtype | None = None,
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """One L1 optimisation step; returns the loss. Raises NonFiniteLossError before any update.

    ``average`` turns this rank's batch-mean loss into the mean over all ranks (data-parallel
    training), so every rank logs the global loss and all of them stop together on a NaN.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(lq.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        sr = model(lq)
    loss = F.l1_loss(sr.float(), gt)
    value = float(average(loss.detach()) if average is not None else loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(f"non-finite training loss ({value}) at step {step}; training stopped", step=step)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return value


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers are copied (as BasicSR)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def run_steps(
    state: TrainState,
    batches: Iterator[dict[str, torch.Tensor]],
    cfg: TrainConfig,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    validate: Callable[[nn.Module], float] | None,
    checkpoint: Callable[[TrainState], None],
    stop_requested: Callable[[], int | None],
    step_callback: Callable[[int], None] | None = None,
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,
    verbose: bool = True,
) -> None:
    """Advance ``state`` to ``cfg.steps``; validation and checkpointing are injected callables.

    At each step boundary: loss-curve point (mean loss since the last one) every ``log_every``
    steps, a progress line every PROGRESS_EVERY_S seconds, validation every
    ``val_every`` steps and at the end, checkpoint every ``checkpoint_every`` steps; a pending stop
    signal checkpoints and raises TrainingInterrupted. ``average``: see :func:`train_step`;
    ``verbose`` False silences the progress lines (ranks other than 0).
    """
    state.model.train()
    net = state.wrapped if state.wrapped is not None else state.model
    timer_start = last_report = time.perf_counter()
    start_step = state.step
    while state.step < cfg.steps:
        step = state.step + 1
        batch = next(batches)
        lq = batch["lq"].to(device, non_blocking=True)
        gt = batch["gt"].to(device, non_blocking=True)
        loss = train_step(net, lq, gt, state.optimizer, state.scaler, step=step, amp_dtype=amp_dtype,
                          average=average)
        state.scheduler.step()
        if state.ema is not None:
            ema_update(state.ema, state.model, cfg.ema_decay)
        state.step = step
        total, count = state.loss_window
        state.loss_window = (total + loss, count + 1)

        if step % cfg.log_every == 0 or step == cfg.steps:
            total, count = state.loss_window
            state.loss_curve.append((step, total / count))
            state.loss_window = (0.0, 0)
        now = time.perf_counter()
        # Progress at a steady pace in wall time, whatever the speed of a step.
        if verbose and (now - last_report >= PROGRESS_EVERY_S or step == cfg.steps or step == start_step + 1):
            rate = (step - start_step) / max(now - timer_start, 1e-9)
            logger.info(
                "step %d/%d  loss %.5f  lr %.3g  %.2f steps/s  eta %.0f s",
                step, cfg.steps, loss, state.optimizer.param_groups[0]["lr"], rate, (cfg.steps - step) / max(rate, 1e-9),
            )
            last_report = now
        if validate is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            psnr = validate(state.ema if state.ema is not None else state.model)
            state.trajectory.append((step, psnr))
            logger.info("step %d: validation PSNR %.4f dB", step, psnr)
        if step_callback is not None:
            step_callback(step)
        signum = stop_requested()
        if signum is not None:
            checkpoint(state)
            raise TrainingInterrupted(signum, step, Path())
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint(state)


# ---------------------------------------------------------------------------------------------
# State <-> checkpoint payload


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        # Only the training device's generator: asking for all devices would open a CUDA context
        # on every GPU of the node from every rank of a data-parallel job.
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type != "cuda":
        return
    if "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"].cpu(), device)
    elif "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():  # checkpoints of older runs
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def state_to_payload(state: TrainState, cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    return {
        "step": state.step,
        "model": state.model.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict(),
        "rng": _rng_state(device),
        # The data order is a function of (seed, stream position); stored for inspection.
        "data": {"seed": cfg.seed, "position": state.step * cfg.batch_size},
        "trajectory": [list(row) for row in state.trajectory],
        "loss_curve": [list(row) for row in state.loss_curve],
        "loss_window": list(state.loss_window),
        "wall_time": state.wall_time,
    }


def payload_to_state(payload: Mapping[str, Any], state: TrainState, device: torch.device) -> None:
    state.model.load_state_dict(payload["model"])
    if state.ema is not None:
        state.ema.load_state_dict(payload["ema"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.scaler.load_state_dict(payload["scaler"])
    _set_rng_state(payload["rng"], device)
    state.step = int(payload["step"])
    state.trajectory = [(int(s), float(v)) for s, v in payload["trajectory"]]
    state.loss_curve = [(int(s), float(v)) for s, v in payload["loss_curve"]]
    state.loss_window = (float(payload["loss_window"][0]), int(payload["loss_window"][1]))
    state.wall_time = float(payload["wall_time"])


# ---------------------------------------------------------------------------------------------
# Orchestration with files


def _identity(cfg: TrainConfig, store: Path, indices: Path | None, val: tuple[str, str] | None) -> dict[str, Any]:
    """Identity of a run: a checkpoint is resumed only by a run with the same fingerprint (its
    digest) and the same implementation version (recorded beside it, `ckpt.stale_reason`)."""
    return {
        "config": asdict(cfg),
        "store": file_identity(store),
        "indices": file_sha256(indices) if indices is not None else None,
        "validation": val,
    }


def _amp_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """The autocast dtype of the training forward for the setting ``amp`` (see
    ``idc.sr.config.AMP_MODES``) on ``device``, None for float32; a mode the device cannot run is a
    ValueError naming the setting, raised before any training."""
    if amp is False:
        return None
    if amp is True:  # the setting's first meaning, kept: results of existing configs are unchanged
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"train.amp: bf16 is not supported by {torch.cuda.get_device_name(device)}; "
                             "use true (fp16 on this GPU) or false")
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError(f"train.amp: fp16 autocast needs a CUDA device, this run trains on {device}; "
                             "use bf16 or false")
        return torch.float16
    raise ValueError(f"train.amp must be one of false, true, bf16, fp16, got {amp!r}")


def default_resume_dir(out_dir: str | os.PathLike) -> Path:
    """``<out_dir>.resume`` next to the output folder: outside the job's declared outputs, so
    Snakemake's removal of a failed job's outputs keeps it."""
    out_dir = Path(out_dir)
    return out_dir.parent / (out_dir.name + ".resume")


def train_sr(
    cfg: TrainConfig,
    *,
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    indices_path: str | os.PathLike | None = None,
    val_hr_dir: str | os.PathLike | None = None,
    val_lr_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
    resume_dir: str | os.PathLike | None = None,
    device: str = "auto",
    step_callback: Callable[[int], None] | None = None,
) -> Path:
    """Train ``cfg.model_name`` (an ``idc.archs`` architecture or preset) on a patch store.

    Writes ``out_dir/model.safetensors`` (EMA weights when ``cfg.ema_decay`` > 0),
    ``out_dir/trajectory.csv`` (``step, psnr``: validation Y/RGB PSNR every ``cfg.val_every`` steps
    and at the end; header only without a validation set) and ``out_dir/train_log.json``; returns
    ``out_dir``. Checkpoints go to ``resume_dir`` (default :func:`default_resume_dir`) every
    ``cfg.checkpoint_every`` steps and on SIGTERM/SIGUSR1 (then TrainingInterrupted is raised); a
    rerun continues from there and the directory is removed once the outputs are complete. A
    checkpoint of a run with other settings is discarded with a warning; a damaged one raises
    CorruptCheckpointError. ``step_callback(step)`` is called after every step.

    Started by torchrun (``WORLD_SIZE`` > 1 in the environment, see :mod:`idc.sr.distributed`),
    each rank trains on ``batch_size / WORLD_SIZE`` samples of every step (its own slice of the
    batch order) with DistributedDataParallel; only rank 0 validates and writes files. A checkpoint
    resumes with any rank count.
    """
    cfg.validate()
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    store_path, out_dir = Path(store_path), Path(out_dir)
    resume_dir = Path(resume_dir) if resume_dir is not None else default_resume_dir(out_dir)
    if resume_dir.resolve() == out_dir.resolve() or out_dir.resolve() in resume_dir.resolve().parents:
        raise ValueError(f"resume_dir {resume_dir} must lie outside out_dir {out_dir}: failed outputs are deleted")
    if not store_path.is_file():
        raise FileNotFoundError(f"patch store not found: {store_path}")

    # Everything that can be checked is checked before the first step.
    from idc.data.store import PatchStore

    with PatchStore(store_path) as store:
        # Training reads every pair many times: one pass over the stored chunks (seconds) is
        # small next to it, and a corrupt chunk would otherwise train silently.
        store.verify()
        n_pairs = len(store)
    indices = None
    if indices_path is not None:
        indices_path = Path(indices_path)
        indices = load_indices(indices_path, n_pairs)
    dataset = PatchPairDataset(store_path, cfg.gt_size, seed=cfg.seed, indices=indices)
    if (val_hr_dir is None) != (val_lr_dir is None):
        raise ValueError("give both val_hr_dir and val_lr_dir, or neither")
    val_images = None
    if val_hr_dir is not None:
        pairs = pair_test_images(val_hr_dir, val_lr_dir, dataset.scale)
        val_images = [(name, *load_test_pair(hr, lr_, dataset.scale)) for name, hr, lr_ in pairs]
    from idc.archs import resolve
    from idc.archs.registry import default_kwarg

    arch, arch_kwargs = resolve(cfg.model_name, **cfg.model_kwargs)  # preset names -> architecture + arguments
    upscale = arch_kwargs.get("upscale", default_kwarg(arch, "upscale"))
    if upscale != dataset.scale:
        raise ValueError(f"model {cfg.model_name!r} up-samples x{upscale}, the patch store {store_path} is x{dataset.scale}")
    world = world_from_env()
    share = split_batch(cfg.batch_size, world)  # this rank's part of every step's batch
    torch_device = rank_device(resolve_device(device), world)
    amp_dtype = _amp_dtype(torch_device, cfg.amp)
    with process_group(world, torch_device):
        return _train(
            cfg, world=world, share=share, torch_device=torch_device, amp_dtype=amp_dtype, dataset=dataset,
            val_images=val_images, store_path=store_path, out_dir=out_dir, resume_dir=resume_dir,
            indices_path=indices_path, val_dirs=(val_hr_dir, val_lr_dir), num_workers=num_workers,
            step_callback=step_callback,
        )


def _build_network(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, str, dict[str, Any]]:
    """The network to train, its architecture and constructor arguments (a preset name resolved)."""
    from idc.archs import build_model, resolve

    arch, arch_kwargs = resolve(cfg.model_name, **cfg.model_kwargs)
    # The same seed on every rank gives every rank the same initial weights.
    torch.manual_seed(cfg.seed)
    try:
        model = build_model(arch, **arch_kwargs)
    except TypeError as err:
        raise ValueError(f"model_kwargs do not fit model {cfg.model_name!r}: {err}") from err
    return model.to(device), arch, arch_kwargs


def _resume(state: TrainState, resume_dir: Path, fingerprint: str, identity: dict[str, Any], *, world: World,
            device: torch.device) -> int:
    """Load the checkpoint of this very run into `state` if there is one; a checkpoint of another
    run (settings, inputs or implementation) is removed with its reason. Returns the step the
    training continues from, the same on every rank."""
    manifest = ckpt.read_manifest(resume_dir)
    stale = ckpt.stale_reason(manifest, fingerprint, identity) if manifest is not None else None
    if stale is not None:
        logger.warning("checkpoint in %s belongs to a run with %s; starting afresh", resume_dir, stale)
        if world.is_main:
            ckpt.clear_checkpoints(resume_dir)
        manifest = None
    start_step = 0
    if manifest is not None:
        payload_to_state(ckpt.load_checkpoint(resume_dir, manifest, map_location=device), state, device)
        start_step = state.step
        if world.is_main:
            logger.info("resuming from step %d (%s)", start_step, resume_dir)
    # Every rank must continue from the same step, or their shards of the stream would not fit.
    check_same(start_step, world, device, "the step to resume from")
    return start_step


def _loader(dataset: PatchPairDataset, cfg: TrainConfig, world: World, *, share: int, start_step: int,
            num_workers: int, device: torch.device) -> DataLoader:
    """This rank's share of the seeded stream of batches, from the step the training resumes at."""
    return DataLoader(
        dataset,
        batch_size=share,
        sampler=StreamSampler(len(dataset), cfg.seed, start=start_step * cfg.batch_size,
                              shards=(world.rank, world.size, share)),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        # The loader's own seed draw must not consume the global RNG that the model uses.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _train(
    cfg: TrainConfig,
    *,
    world: World,
    share: int,
    torch_device: torch.device,
    amp_dtype: torch.dtype | None,
    dataset: PatchPairDataset,
    val_images: list | None,
    store_path: Path,
    out_dir: Path,
    resume_dir: Path,
    indices_path: Path | None,
    val_dirs: tuple[Any, Any],
    num_workers: int,
    step_callback: Callable[[int], None] | None,
) -> Path:
    """The body of :func:`train_sr` once inputs are checked, in this rank's process group."""
    val_hr_dir, val_lr_dir = val_dirs
    model, arch, arch_kwargs = _build_network(cfg, torch_device)
    state = build_state(model, cfg, amp_dtype=amp_dtype)
    identity = _identity(
        cfg, store_path, indices_path, (str(val_hr_dir), str(val_lr_dir)) if val_hr_dir is not None else None
    )
    fingerprint = fingerprint_digest(identity)
    start_step = _resume(state, resume_dir, fingerprint, identity, world=world, device=torch_device)
    if world.distributed:
        state.wrapped = DistributedDataParallel(
            model, device_ids=[torch_device.index] if torch_device.type == "cuda" else None
        )
    if world.is_main:
        logger.info(
            "training %s on %s (%d patches, gt %d, batch %d%s) for %d steps on %s%s",
            cfg.model_name, store_path.name, len(dataset), cfg.gt_size, cfg.batch_size,
            f" = {world.size} ranks x {share}" if world.distributed else "", cfg.steps, torch_device,
            f" with {amp_dtype} autocast" if amp_dtype else "",
        )

    loader = _loader(dataset, cfg, world, share=share, start_step=state.step, num_workers=num_workers,
                     device=torch_device)

    def validate(net: nn.Module) -> float:
        rows = evaluate_images(net, val_images, crop_border=cfg.crop_border, test_y_channel=cfg.test_y_channel,
                               device=torch_device, with_ssim=False)
        return float(np.mean([r["psnr"] for r in rows]))

    session_start = time.perf_counter()

    def save(st: TrainState) -> None:
        if not world.is_main:
            return
        payload = state_to_payload(st, cfg, torch_device)
        payload["wall_time"] = st.wall_time + time.perf_counter() - session_start
        ckpt.save_checkpoint(resume_dir, payload, step=st.step, fingerprint=fingerprint, identity=identity)

    with stop_signals(log=logger) as flag:

        def stop_requested() -> int | None:
            # A signal may reach only some ranks: all stop at the same step when any got one.
            signum = all_max(flag.signum or 0, world, torch_device)
            return signum or None

        batches = iter(loader)
        try:
            run_steps(
                state, batches, cfg, device=torch_device, amp_dtype=amp_dtype,
                validate=validate if val_images and world.is_main else None, checkpoint=save,
                stop_requested=stop_requested, step_callback=step_callback,
                average=(lambda t: all_mean(t, world)) if world.distributed else None, verbose=world.is_main,
            )
        except TrainingInterrupted as err:
            barrier(world)  # rank 0's checkpoint is complete before any rank reports the stop
            raise TrainingInterrupted(err.signum, err.step, resume_dir) from None
        finally:
            del batches  # shuts loader workers down
    state.wall_time += time.perf_counter() - session_start
    if not world.is_main:
        barrier(world)
        return out_dir

    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(pd.DataFrame(state.trajectory, columns=["step", "psnr"]), out_dir / "trajectory.csv")
    # Read as one record by the report (final_val_psnr, wall_time_s) and by a user's audit.
    train_log = {
        "seed": cfg.seed,
        PROVENANCE_KEY: provenance(seeds={"seed": cfg.seed}, config=asdict(cfg)),
        "settings": {**asdict(cfg), "store_path": str(store_path), "indices_path": indices_path,
                     "val_hr_dir": val_hr_dir, "val_lr_dir": val_lr_dir, "num_workers": num_workers,
                     "device": str(torch_device),
                     "gpu": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else None,
                     "amp_dtype": str(amp_dtype) if amp_dtype else None, "ranks": world.size},
        "n_patches": len(dataset),
        "final_step": state.step,
        "resumed_from_step": start_step or None,
        "wall_time_s": state.wall_time,
        "final_val_psnr": state.trajectory[-1][1] if state.trajectory else None,
        "loss_curve": state.loss_curve,
    }
    atomic_write_text(out_dir / "train_log.json", json.dumps(train_log, indent=1, default=str))
    from idc.archs import save_model

    final = state.ema if state.ema is not None else state.model
    save_model(out_dir / "model.safetensors", final, arch, arch_kwargs)
    ckpt.clear_checkpoints(resume_dir)
    logger.info("finished %d steps in %.0f s; outputs in %s", state.step, state.wall_time, out_dir)
    barrier(world)  # the other ranks leave only once the outputs are complete
    return out_dir
