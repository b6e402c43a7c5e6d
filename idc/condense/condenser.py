"""Condensing one instance (image): real LR patches + frozen feature extractor -> synthetic patches.

`condense_instance` is pure apart from an optional resume checkpoint: tensors in, tensors and a
log dict out; deterministic for a seed on the CPU, and a run interrupted (SIGTERM/SIGUSR1, or
killed after a periodic checkpoint) and resumed gives exactly the uninterrupted result there.

This module holds the public API and the optimisation loop (`_run`, read it against the paper's
Algorithm 1); its parts live beside it: extractor access in `extractor`, one instance's state and
losses in `instance`, checkpoint files in `checkpoint`, the losses in `losses`, grouping and
pairing in `grouping`.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from idc.condense.checkpoint import (
    CHECKPOINT_FORMAT,
    check_instance_states,
    extractor_digest,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
    stale_reason,
    to_device,
)
from idc.condense.config import CondenseConfig
from idc.condense.diagnostics import plateau_step
from idc.condense.extractor import FeatureCall, LayerTap, frozen_extractor
from idc.condense.instance import Instance, NonFiniteLossError, dihedral
from idc.condense.timing import NO_TIMER, NoTimer
from idc.progress import format_duration
from idc.runloop import RunInterrupted, StopFlag, stop_signals

logger = logging.getLogger(__name__)

# Imported from here by the stage, the benchmarks and the tests.
__all__ = ["CHECKPOINT_FORMAT", "CondensationInterrupted", "NonFiniteLossError", "condense_instance",
           "condense_instances", "defer_host_checks", "dihedral", "load_checkpoint", "plateau_step",
           "save_checkpoint"]


class CondensationInterrupted(RunInterrupted):
    """Raised after a checkpoint was written because SIGTERM/SIGUSR1 arrived; `signum` is that
    signal (the command's exit status is 128 + signum, as for `sr train`)."""

    def __init__(self, message: str, signum: int = signal.SIGTERM) -> None:
        super().__init__(message)
        self.signum = int(signum)

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process pools (the settings study) intact
        return type(self), (str(self), self.signum)


def defer_host_checks(device: torch.device) -> bool:
    """On accelerators, avoid a host synchronisation per step: the non-finite check reads the
    device-side first-bad-step only at log/checkpoint steps."""
    return device.type != "cpu"


def _check_inputs(real_lr: torch.Tensor, extractor: nn.Module) -> None:
    if not isinstance(real_lr, torch.Tensor) or real_lr.ndim != 4 or real_lr.shape[1] != 3:
        shape = tuple(real_lr.shape) if isinstance(real_lr, torch.Tensor) else type(real_lr).__name__
        raise ValueError(f"real_lr must be a (N, 3, h, w) tensor, got {shape}")
    if real_lr.shape[0] < 1:
        raise ValueError("real_lr holds no patches")
    if not torch.isfinite(real_lr).all() or real_lr.min() < 0 or real_lr.max() > 1:
        raise ValueError("real_lr must be finite and in [0, 1]")
    if not callable(getattr(extractor, "features", None)):
        raise ValueError(f"extractor {type(extractor).__name__} has no features(x) method")


def condense_instance(
    real_lr: torch.Tensor,
    extractor: nn.Module,
    cfg: CondenseConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    resume_path: str | os.PathLike | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    n_synthetic: int | None = None,
    timer: NoTimer = NO_TIMER,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Condense one instance. Returns (synthetic (n, 3, h, w) float32 in [0,1] on the CPU, log).

    n = `n_synthetic` (default `cfg.n_synthetic(N)`: this instance as the whole training set).
    The extractor is frozen (eval mode, no gradients to its weights);
    real features are computed once. With `resume_path`, state is checkpointed there every
    `cfg.checkpoint_every` steps and when SIGTERM/SIGUSR1 arrives (then CondensationInterrupted is
    raised at the next step boundary); an existing checkpoint is resumed. A non-finite loss raises
    NonFiniteLossError naming the step. `on_log(record)` is called for every logged step.
    `timer` (idc.condense.timing.StepTimer) times every step and its parts, for benchmarks.
    """
    wrapped = None if on_log is None else (lambda index, record: on_log(record))
    return condense_instances([real_lr], extractor, cfg, seeds=[seed], device=device, progress=progress,
                              resume_path=resume_path, on_log=wrapped,
                              n_synthetic=None if n_synthetic is None else [n_synthetic], timer=timer)[0]


def condense_instances(
    reals: list[torch.Tensor],
    extractor: nn.Module,
    cfg: CondenseConfig,
    *,
    seeds: list[int],
    device: str | torch.device = "cpu",
    progress: bool = True,
    resume_path: str | os.PathLike | None = None,
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
    n_synthetic: list[int] | None = None,
    timer: NoTimer = NO_TIMER,
) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """Condense several instances packed in one optimisation loop (one extractor pass over all
    synthetic patches per step: better use of a GPU). Every instance keeps its own real side,
    filters, frequencies, groups, pairs, parameters and log; Adam is element-wise, so the result
    equals separate `condense_instance` runs up to floating-point differences of the batched
    extractor, which the optimisation amplifies over the steps (docs/hpc.md); under
    `stop_on_plateau` the pack shares one schedule (its last instance's plateau). Patch sizes must
    agree. `on_log(instance_index, record)`. `n_synthetic`: each instance's number of synthetic
    patches (the stage passes its share of the whole training set, idc.condense.budget); by
    default `cfg.synthetic_counts` over these instances alone.
    """
    if isinstance(cfg, dict):
        cfg = CondenseConfig.from_dict(cfg)  # a CondenseConfig was checked when it was made
    if len(reals) == 0 or len(reals) != len(seeds):
        raise ValueError(f"need one seed per instance (got {len(reals)} instances, {len(seeds)} seeds)")
    for real_lr in reals:
        _check_inputs(real_lr, extractor)
    if len({tuple(r.shape[1:]) for r in reals}) != 1:
        raise ValueError(f"packed instances need equal patch sizes, got {sorted({tuple(r.shape[1:]) for r in reals})}")
    if n_synthetic is None:
        n_synthetic = cfg.synthetic_counts([r.shape[0] for r in reals])
    if len(n_synthetic) != len(reals) or any(
            isinstance(n, bool) or int(n) != n or not 1 <= n <= r.shape[0] for n, r in zip(n_synthetic, reals)):
        raise ValueError(f"n_synthetic must give each instance 1..N patches, got {list(n_synthetic)} for "
                         f"N = {[r.shape[0] for r in reals]}")
    n_synthetic = [int(n) for n in n_synthetic]
    device = torch.device(device)
    resume_path = Path(resume_path) if resume_path is not None else None
    weights = extractor_digest(extractor) if resume_path is not None else None
    fingerprints = [fingerprint(cfg, s, r, n, extractor_sha256=weights) for s, r, n in zip(seeds, reals, n_synthetic)]

    checkpoint = None
    if resume_path is not None and resume_path.exists():
        checkpoint = load_checkpoint(resume_path)
        stale = stale_reason(checkpoint, fingerprints)
        if stale is not None:
            # The settings, the extractor or the code changed since the interruption (the workflow
            # reruns the job because an input changed): that run's state is of no use, so start afresh.
            logger.warning("discarding condensation checkpoint %s made with %s; starting afresh",
                           resume_path, stale)
            checkpoint = None

    tap = LayerTap(extractor) if (cfg.use_group and cfg.feature_layer == "first") else None
    try:
        with frozen_extractor(extractor, cfg, device) as frozen, stop_signals() as stop:
            features = FeatureCall(frozen, cfg, device, tap)
            return _run(reals, features, cfg, seeds=seeds, n_synthetic=n_synthetic, device=device,
                        progress=progress, resume_path=resume_path, checkpoint=checkpoint, fingerprints=fingerprints,
                        on_log=on_log, stop=stop, timer=timer)
    finally:
        if tap is not None:
            tap.close()


def _run(reals: list[torch.Tensor], features: FeatureCall, cfg: CondenseConfig, *, seeds: list[int],
         n_synthetic: list[int], device: torch.device, progress: bool, resume_path: Path | None,
         checkpoint: dict[str, Any] | None, fingerprints: list[dict[str, Any]],
         on_log: Callable[[int, dict[str, Any]], None] | None,
         stop: StopFlag, timer: NoTimer) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """The optimisation loop: Algorithm 1 of the paper (x_c the real patches of instance c, y_c
    its synthetic ones), for all packed instances at once.

    Algorithm 1                                 here
    for each instance c:                        one `Instance` per instance, all in one loop
      randomly initialise y_c, |y_c| = r|x_c|   Instance(): n_synthetic patches from
                                                `_init_synthetic` (cfg.init: distinct random
                                                real patches by default)
      extract the features f(x_c)               Instance(): once, with their Random Local
                                                Fourier features, samples and k-means groups
      for i in num_iters:                       `while step < end`: end from cfg.schedule (the
                                                held-out plateau if cfg.stop_on_plateau)
        extract f(y_c); Random Local Fourier    `features(images)`: one extractor call for
          features; unfold into local patches   the pack, then Instance.losses
        if i in warm up: L = w_ins L_ins        Instance.losses: not `grouped` before cfg.warmup
        else:
          if i in assigning: increase           `is_event` (cfg.assignment_steps): the event
            grouping, increase pairing          in Instance.losses (ProgressiveAssigner)
          L = w_ins L_ins + w_group L_group     Instance.losses: its `total`
              + w_pair L_pair
        y_c <- y_c - eta grad L                 `optimizer.step()` (Adam; eta = cfg.lr_at(step))
      y_c^HR = f(y_c) up-sampled                not here: idc.condense.stage
    Around it: a stop signal, and every cfg.checkpoint_every steps -> checkpoint; every
    cfg.log_every steps -> one record per instance (losses, lr, diagnostics); a non-finite
    loss -> NonFiniteLossError naming the first bad step. `timer` times each step and its parts
    (idc.condense.timing; by default it does nothing).
    """
    t_start = time.perf_counter()
    insts = [Instance(r, features, cfg, seed=s, n_synthetic=n, device=device)
             for r, s, n in zip(reals, seeds, n_synthetic)]
    optimizer = torch.optim.Adam([p for inst in insts for p in inst.params], lr=cfg.lr,
                                 betas=tuple(cfg.adam_betas))
    events = set(cfg.assignment_steps())
    start_step, seconds_before, resumed_from = 0, 0.0, None
    if checkpoint is not None:
        check_instance_states(resume_path, checkpoint.get("instances"),
                              [{"syn_param": inst.syn_param, "deform_scale": inst.deform_scale,
                                "deform_shift": inst.deform_shift} for inst in insts])
        for inst, state in zip(insts, checkpoint["instances"]):
            inst.load(state)
        optimizer.load_state_dict(to_device(checkpoint["optimizer"], device))
        start_step = resumed_from = checkpoint["step"]
        seconds_before = checkpoint["seconds"]
        logger.info("resuming condensation from step %d (%s)", start_step, resume_path)

    def make_checkpoint(step: int) -> None:
        if resume_path is None:
            return
        save_checkpoint(resume_path, {
            "format": CHECKPOINT_FORMAT, "fingerprints": fingerprints, "step": step,
            "instances": [inst.state() for inst in insts],
            "optimizer": to_device(optimizer.state_dict(), torch.device("cpu")),
            "seconds": seconds_before + time.perf_counter() - t_start,
        })

    finite = _FiniteGuard(device, check_every=max(1, cfg.log_every) if defer_host_checks(device) else 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc="condense", unit="step", mininterval=5.0)
    sizes = [inst.n_syn for inst in insts]
    snapshot_steps = set(cfg.snapshot_steps())
    # The plateau (if any) is a function of the logged records, so a resumed run finds it again.
    plateau = _pack_plateau(insts, cfg)
    milestones_end = cfg.schedule(plateau)
    step = start_step
    while step < milestones_end[1]:
        if stop.signum is not None:
            finite.check()
            make_checkpoint(step)
            where = f"checkpoint at {resume_path}" if resume_path else "no checkpoint path given"
            raise CondensationInterrupted(f"condensation interrupted by {stop.name} at step {step} ({where})",
                                          stop.signum)
        with timer.step():
            lr_now = cfg.lr_at(step, plateau)
            end = milestones_end[1]
            for group in optimizer.param_groups:
                group["lr"] = lr_now

            # Features of every instance's synthetic patches in one call, then each instance's losses.
            is_event = step in events
            if step in snapshot_steps:
                for inst in insts:
                    inst.take_snapshot(step)
            with timer.part("view"):
                views = [inst.view(step, is_event) for inst in insts]
                images = views[0] if len(insts) == 1 else torch.cat(views)
            with timer.part("extractor_forward"):
                f_all, g_all = features(images)
            f_parts = f_all.split(sizes) if len(insts) > 1 else [f_all]
            g_parts = (g_all.split(sizes) if len(insts) > 1 else [g_all]) if g_all is not None else [None] * len(insts)
            parts = [inst.losses(step, f, g, is_event, finite.check, timer)
                     for inst, f, g in zip(insts, f_parts, g_parts)]
            total = parts[0]["loss"] if len(parts) == 1 else torch.stack([p["loss"] for p in parts]).sum()
            finite.observe(step, total, parts)

            # The update.
            logging_step = step % cfg.log_every == 0 or step == end - 1
            grad_norms = None
            if logging_step and cfg.log_grad_norms:
                with timer.part("log"):
                    grad_norms = [inst.term_grad_norms(p) for inst, p in zip(insts, parts)]
            optimizer.zero_grad(set_to_none=True)
            with timer.part("backward"):
                if total.requires_grad:
                    total.backward()
            with timer.part("optimizer"):
                if total.requires_grad:
                    optimizer.step()
                if cfg.parametrisation == "clamp":
                    with torch.no_grad():
                        for inst in insts:
                            inst.syn_param.clamp_(0.0, 1.0)

            if logging_step:
                with timer.part("log"):
                    finite.check()
                    _log_step(insts, parts, grad_norms, step=step, end=end, lr=lr_now, start_step=start_step,
                              t_start=t_start, seconds_before=seconds_before, on_log=on_log)
                if cfg.stop_on_plateau and plateau is None:
                    plateau = _pack_plateau(insts, cfg)
                    if plateau is not None:
                        milestones_end = cfg.schedule(plateau)
                        logger.info("held-out MMD reached a plateau at step %d: learning-rate decays at %s, "
                                    "end at %d", plateau, milestones_end[0], milestones_end[1])
                        if bar is not None:
                            bar.total = milestones_end[1]
                            bar.refresh()
            if bar is not None:
                bar.update(1)
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < milestones_end[1]:
                with timer.part("checkpoint"):
                    finite.check()
                    make_checkpoint(step + 1)
        step += 1
    if bar is not None:
        bar.close()
    finite.check()
    end = milestones_end[1]
    for inst in insts:
        inst.take_snapshot(end)
        inst.stopping = {"rule": "plateau" if cfg.stop_on_plateau else "steps", "plateau_step": plateau,
                         "milestones": milestones_end[0], "end_step": end,
                         "reason": (f"held-out MMD improved by less than {cfg.plateau_tolerance:g} (relative) over "
                                    f"{cfg.plateau_patience} logged steps" if plateau is not None else
                                    "configured steps reached")}
    seconds = seconds_before + time.perf_counter() - t_start
    return [inst.result(seconds, resumed_from) for inst in insts]


class _FiniteGuard:
    """The non-finite loss check. On the CPU every step is checked; on an accelerator the first
    bad step is kept on the device and read at log/checkpoint/event steps (no host sync per step)."""

    def __init__(self, device: torch.device, *, check_every: int) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.detail: dict[str, torch.Tensor] = {}
        self.check_every = check_every

    def observe(self, step: int, total: torch.Tensor, parts: list[dict[str, torch.Tensor]]) -> None:
        bad_now = ~torch.isfinite(total.detach())
        self.first_bad = torch.where((self.first_bad < 0) & bad_now, torch.full_like(self.first_bad, step),
                                     self.first_bad)
        if step % self.check_every == 0 and bool(bad_now):
            self.detail = {k: v.detach() for k, v in parts[0].items()} if len(parts) == 1 else \
                {f"instance{i}": p["loss"].detach() for i, p in enumerate(parts)}
            self.check()

    def check(self) -> None:
        bad = int(self.first_bad)
        if bad >= 0:
            raise NonFiniteLossError(bad, ", ".join(f"{k}={float(v):.4g}" for k, v in self.detail.items()))


def _log_step(insts: list[Instance], parts: list[dict[str, torch.Tensor]], grad_norms: list[dict[str, float]] | None,
              *, step: int, end: int, lr: float, start_step: int, t_start: float, seconds_before: float,
              on_log: Callable[[int, dict[str, Any]], None] | None) -> None:
    """One record per instance (losses, lr, time, gradient norms, diagnostics) and a log line."""
    seconds = round(seconds_before + time.perf_counter() - t_start, 3)
    for i, (inst, p) in enumerate(zip(insts, parts)):
        record = {"step": step, **{k: float(v.detach()) for k, v in p.items()}, "lr": lr, "seconds": seconds}
        if grad_norms is not None:
            record.update(grad_norms[i])
        if inst.monitor is not None:
            # measured on the patches after this step's update (those a stop here returns)
            record.update(inst.monitor.record(inst.pixels()))
        inst.records.append(record)
        if on_log is not None:
            on_log(i, record)
        done = step + 1 - start_step  # steps of this process: the rate of a resumed run is its own
        rate = done / max(1e-9, time.perf_counter() - t_start)
        logger.info("step %d/%d loss %.5g (ins %.4g group %.4g pair %.4g) lr %.3g, %.2f steps/s, eta %s%s",
                    step, end, record["loss"], record["loss_ins"], record["loss_group"], record["loss_pair"],
                    lr, rate, format_duration((end - step - 1) / max(rate, 1e-9)),
                    f" [instance {i}]" if len(insts) > 1 else "")


def _pack_plateau(insts: list[Instance], cfg: CondenseConfig) -> int | None:
    """Packed instances share one learning rate: the pack's plateau is the last instance's."""
    if not cfg.stop_on_plateau:
        return None
    steps = [plateau_step(inst.records, after=cfg.last_assignment_step(), patience=cfg.plateau_patience,
                          tolerance=cfg.plateau_tolerance) for inst in insts]
    return None if any(s is None for s in steps) else max(steps)
