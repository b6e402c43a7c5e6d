"""Condensing one instance (image): real LR patches + frozen feature extractor -> synthetic patches.

`condense_instance` is pure apart from an optional resume checkpoint: tensors in, tensors and a
log dict out; deterministic for a seed on the CPU, and a run interrupted (SIGTERM/SIGUSR1, or
killed after a periodic checkpoint) and resumed gives exactly the uninterrupted result there.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idc.atomic import atomic_path
from idc.condense.config import CondenseConfig, split_execution_settings
from idc.condense.diagnostics import QualityMonitor, summarise_diagnostics
from idc.condense.extractor import FeatureCall, LayerTap, frozen_extractor
from idc.condense.features import LocalFeatures
from idc.condense.grouping import ProgressiveAssigner, kmeans, patch_descriptors
from idc.condense.losses import (instance_and_group_losses, instance_and_group_losses_looped,
                                 normalise_samples, pair_loss, pair_loss_looped, real_cf_stats,
                                 sample_frequencies, select_cf_stats)
from idc.condense.upsample import to_uint8
from idc.progress import format_duration

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "idc-condense-checkpoint/2"


class CondensationInterrupted(RuntimeError):
    """Raised after a checkpoint was written because SIGTERM/SIGUSR1 arrived."""


class NonFiniteLossError(FloatingPointError):
    """The total loss became NaN/inf; carries the first bad step."""

    def __init__(self, step: int, detail: str) -> None:
        super().__init__(f"non-finite condensation loss at step {step} ({detail}); "
                         "lower the learning rate or check the inputs")
        self.step = step


def defer_host_checks(device: torch.device) -> bool:
    """On accelerators, avoid a host synchronisation per step: the non-finite check reads the
    device-side first-bad-step only at log/checkpoint steps."""
    return device.type != "cpu"


def subseed(seed: int, name: str) -> int:
    """Independent, reproducible seeds for each random component of one instance."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------
# Signals and checkpoints
# ----------------------------------------------------------------------------------------------
class _StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _fingerprint(cfg: CondenseConfig, seed: int, real_lr: torch.Tensor, n_synthetic: int) -> dict[str, Any]:
    # A checkpoint made with other execution settings may be resumed.
    d, _ = split_execution_settings(cfg.to_dict())
    return {"config": d, "seed": int(seed), "real_shape": list(real_lr.shape),
            "real_sum": float(real_lr.double().sum()), "n_synthetic": int(n_synthetic)}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    except Exception as err:  # truncated/corrupt files must never be taken as valid
        raise ValueError(f"condensation checkpoint {path} is corrupt or truncated ({err}); "
                         "delete it to restart") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"condensation checkpoint {path} is not a {CHECKPOINT_FORMAT} file")
    return state


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to(v, device) for v in obj]
    return obj


# ----------------------------------------------------------------------------------------------
# The condenser
# ----------------------------------------------------------------------------------------------
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


def _random_picks(n_real: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """n real-patch indices, distinct while n <= n_real (then the permutation repeats)."""
    reps = -(-n // n_real)
    return torch.cat([torch.randperm(n_real, generator=gen) for _ in range(reps)])[:n]


def _init_synthetic(real_lr: torch.Tensor, n: int, cfg: CondenseConfig, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(subseed(seed, "init"))
    shape = (n, *real_lr.shape[1:])
    real = real_lr.detach().cpu().float()
    if cfg.init == "random":
        return torch.rand(shape, generator=gen)
    if cfg.init == "tiles":
        h, w = real.shape[2:]
        if h % 2 or w % 2:
            raise ValueError(f"condense config: init='tiles' needs even patch sizes, got {h}x{w}")
        small = F.interpolate(real[_random_picks(real.shape[0], 4 * n, gen)], scale_factor=0.5, mode="area")
        small = small.reshape(n, 2, 2, 3, h // 2, w // 2)
        return small.permute(0, 3, 1, 4, 2, 5).reshape(shape).clamp(0, 1)
    picks = _random_picks(real.shape[0], n, gen)
    if cfg.init == "real":
        return real[picks].clone()
    noise = torch.randn(shape, generator=gen) * cfg.init_noise
    return (real[picks] + noise).clamp(0, 1)


def dihedral(x: torch.Tensor, d: int) -> torch.Tensor:
    """One of the 8 flips/rotations of square patches x (..., h, w): rot90^(d % 4), then a
    horizontal flip when d >= 4; d = 0 is the identity."""
    y = torch.rot90(x, d % 4, dims=(-2, -1)) if d % 4 else x
    return torch.flip(y, dims=(-1,)) if d >= 4 else y


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
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Condense one instance. Returns (synthetic (n, 3, h, w) float32 in [0,1] on the CPU, log).

    n = `n_synthetic` (default `cfg.n_synthetic(N)`: this instance as the whole training set).
    The extractor is frozen (eval mode, no gradients to its weights);
    real features are computed once. With `resume_path`, state is checkpointed there every
    `cfg.checkpoint_every` steps and when SIGTERM/SIGUSR1 arrives (then CondensationInterrupted is
    raised at the next step boundary); an existing checkpoint is resumed. A non-finite loss raises
    NonFiniteLossError naming the step. `on_log(record)` is called for every logged step.
    """
    wrapped = None if on_log is None else (lambda index, record: on_log(record))
    return condense_instances([real_lr], extractor, cfg, seeds=[seed], device=device, progress=progress,
                              resume_path=resume_path, on_log=wrapped,
                              n_synthetic=None if n_synthetic is None else [n_synthetic])[0]


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
) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """Condense several instances packed in one optimisation loop (one extractor pass over all
    synthetic patches per step: better use of a GPU). Every instance keeps its own real side,
    filters, frequencies, groups, pairs, parameters and log; Adam is element-wise, so the result
    equals separate `condense_instance` runs up to floating-point differences of the batched
    extractor. Patch sizes must agree. `on_log(instance_index, record)`. `n_synthetic`: each
    instance's number of synthetic patches (the stage passes its share of the whole training
    set, idc.condense.budget); by default `cfg.synthetic_counts` over these instances alone.
    """
    if isinstance(cfg, dict):
        cfg = CondenseConfig.from_dict(cfg)
    cfg.validate()
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
    fingerprints = [_fingerprint(cfg, s, r, n) for s, r, n in zip(seeds, reals, n_synthetic)]

    checkpoint = None
    if resume_path is not None and resume_path.exists():
        checkpoint = load_checkpoint(resume_path)
        if checkpoint["fingerprints"] != fingerprints:
            # The settings changed since the interruption (the workflow reruns the job because its
            # parameters changed): that run's state is of no use for this one, so start afresh.
            old = checkpoint["fingerprints"][0]["config"]
            diff = [k for k, v in fingerprints[0]["config"].items() if old.get(k) != v]
            logger.warning("discarding condensation checkpoint %s made with other settings (%s); starting afresh",
                           resume_path, ", ".join(diff) or "seed, real patches or n_synthetic")
            checkpoint = None

    tap = LayerTap(extractor) if (cfg.use_group and cfg.feature_layer == "first") else None
    try:
        with frozen_extractor(extractor, cfg, device) as frozen, _StopRequest() as stop:
            features = FeatureCall(frozen, cfg, device, tap)
            return _run(reals, features, cfg, seeds=seeds, n_synthetic=n_synthetic, device=device,
                        progress=progress, resume_path=resume_path, checkpoint=checkpoint, fingerprints=fingerprints,
                        on_log=on_log, stop=stop)
    finally:
        if tap is not None:
            tap.close()


class _Instance:
    """Everything one instance owns: real side, filters, groups/pairs, parameters, log."""

    def __init__(self, real_lr: torch.Tensor, features: FeatureCall, cfg: CondenseConfig, *, seed: int,
                 n_synthetic: int, device: torch.device) -> None:
        self.cfg, self.seed, self.device = cfg, int(seed), device
        self.n_real = real_lr.shape[0]
        self.n_syn = int(n_synthetic)
        real = real_lr.to(device=device, dtype=torch.float32)

        # ---- real side, once --------------------------------------------------------------------
        f_real, g_real = features.batched(real, cfg.extract_batch)
        self.local = LocalFeatures.build(cfg, f_real.shape[1], seed=subseed(seed, "filters"), device=device)
        self.local.fit_real(f_real)
        with torch.no_grad():
            self.real_samples = normalise_samples(self.local.samples(f_real, real=True))  # (N'_r, s, D)
            # Joint augmentation: the real samples of every transform, once (d = 0 is the identity).
            self.real_samples_by_transform = [self.real_samples]
            if cfg.augment == "dihedral":
                for d in range(1, 8):
                    f_d, _ = features.batched(dihedral(real, d), cfg.extract_batch)
                    self.real_samples_by_transform.append(normalise_samples(self.local.samples(f_d, real=True)))
        self.transform = 0
        self.aug_gen = torch.Generator().manual_seed(subseed(seed, "augment"))
        self.per_patch, self.dim = self.real_samples.shape[1], self.real_samples.shape[2]
        self.real_flat = self.real_samples.reshape(-1, self.dim)
        self.n_real_patches = self.real_samples.shape[0]
        self.n_syn_patches = self.n_real_patches // self.n_real * self.n_syn

        self.assigner: ProgressiveAssigner | None = None
        self.real_patch_feat = None
        if cfg.use_group:
            layer_real = g_real if g_real is not None else f_real
            real_desc, self.real_patch_feat = patch_descriptors(layer_real, cfg.patch)
            km_gen = torch.Generator(device=device).manual_seed(subseed(seed, "kmeans"))
            centroids, labels = kmeans(real_desc, cfg.groups, generator=km_gen, iters=cfg.kmeans_iters,
                                       tol=cfg.kmeans_tol)
            self.assigner = ProgressiveAssigner(groups=cfg.groups, assign_times=cfg.assign_times,
                                                use_pair=cfg.use_pair, order=cfg.assign_order, pairing=cfg.pairing,
                                                real_labels=labels, centroids=centroids, n_syn=self.n_syn_patches)
            if cfg.assign_order == "random":
                gen = torch.Generator().manual_seed(subseed(seed, "assign"))
                self.assigner.random_order = torch.randperm(self.n_syn_patches, generator=gen).to(device)
        del f_real, g_real

        # ---- synthetic parameters --------------------------------------------------------------
        init = _init_synthetic(real_lr, self.n_syn, cfg, seed).to(device)
        if cfg.parametrisation == "sigmoid":
            init = torch.logit(init.clamp(1e-3, 1 - 1e-3))
        self.syn_param = nn.Parameter(init)
        self.params = [self.syn_param]
        self.deform_scale = self.deform_shift = None
        if cfg.use_pair and cfg.deformation == "affine":
            self.deform_scale = nn.Parameter(torch.zeros(self.n_syn_patches, self.dim, device=device))
            self.deform_shift = nn.Parameter(torch.zeros(self.n_syn_patches, self.dim, device=device))
            self.params += [self.deform_scale, self.deform_shift]
        self.freq_gen = torch.Generator(device=device).manual_seed(subseed(seed, "freqs"))
        self.t: torch.Tensor | None = None
        self.t_index: torch.Tensor | None = None
        self.real_stats: dict | None = None
        self.freq_pool: torch.Tensor | None = None
        self._pool_stats: dict[int, dict] = {}  # transform -> real CF statistics of the whole pool
        if cfg.freq_pool:
            pool_gen = torch.Generator(device=device).manual_seed(subseed(seed, "freq_pool"))
            self.freq_pool = sample_frequencies(cfg.freq_pool * cfg.num_freqs, self.dim, std=cfg.freq_std,
                                                generator=pool_gen, device=device)
        self.records: list[dict[str, Any]] = []
        self.event_log: list[dict[str, int]] = []
        self.monitor = QualityMonitor(real_lr, seed=subseed(seed, "diagnostics")) if cfg.diagnostics else None
        self.snapshots: dict[int, np.ndarray] = {}
        self.stopping: dict[str, Any] = {}
        self.real_seg = None
        self._cache_events = -1
        self._syn_seg = self._paired = self._pair_real = self._pair_group = None
        self._sync_real_seg()

    def _sync_real_seg(self) -> None:
        if self.assigner is not None:
            self.real_seg = self.assigner.real_labels.repeat_interleave(self.per_patch)

    # ---- checkpoint parts ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        cpu = torch.device("cpu")
        return {"syn_param": self.syn_param.detach().cpu(),
                "deform_scale": None if self.deform_scale is None else self.deform_scale.detach().cpu(),
                "deform_shift": None if self.deform_shift is None else self.deform_shift.detach().cpu(),
                "freq_gen": self.freq_gen.get_state(), "t": None if self.t is None else self.t.cpu(),
                "t_index": None if self.t_index is None else self.t_index.cpu(),
                "assigner": None if self.assigner is None else _to(self.assigner.state_dict(), cpu),
                "records": self.records, "events": self.event_log, "aug_gen": self.aug_gen.get_state(),
                "snapshots": {int(k): torch.from_numpy(v) for k, v in self.snapshots.items()}}

    def load(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.syn_param.copy_(state["syn_param"].to(self.device))
            if self.deform_scale is not None:
                self.deform_scale.copy_(state["deform_scale"].to(self.device))
                self.deform_shift.copy_(state["deform_shift"].to(self.device))
        self.freq_gen.set_state(state["freq_gen"])
        self.t = None if state["t"] is None else state["t"].to(self.device)
        self.t_index = None if state["t_index"] is None else state["t_index"].to(self.device)
        if self.assigner is not None:
            self.assigner.load_state_dict(_to(state["assigner"], self.device))
        # the checkpointed groups (k-means is not bit-reproducible on every GPU)
        self._sync_real_seg()
        self.records, self.event_log = state["records"], state["events"]
        self.aug_gen.set_state(state["aug_gen"])
        self.snapshots = {int(k): v.numpy() for k, v in state["snapshots"].items()}

    # ---- one step -----------------------------------------------------------------------------
    def pixels(self) -> torch.Tensor:
        return torch.sigmoid(self.syn_param) if self.cfg.parametrisation == "sigmoid" else self.syn_param

    def view(self, step: int, is_event: bool) -> torch.Tensor:
        """The synthetic patches as the extractor sees them at `step`: under joint augmentation
        one seeded random transform per step (drawn every step, so resume stays exact), the
        identity at assignment events (groups and pairs are formed on the patches as they are)."""
        if self.cfg.augment == "none":
            return self.pixels()
        d = int(torch.randint(8, (1,), generator=self.aug_gen))
        self.transform = 0 if is_event else d
        return dihedral(self.pixels(), self.transform)

    def take_snapshot(self, step: int) -> None:
        k = self.cfg.snapshot_patches
        if k:
            self.snapshots[int(step)] = to_uint8(self.pixels()[:k])

    def losses(self, step: int, f_syn: torch.Tensor, g_syn: torch.Tensor | None, is_event: bool,
               check_finite: Callable[[], None]) -> dict[str, torch.Tensor]:
        cfg, assigner = self.cfg, self.assigner
        zero = torch.zeros((), device=self.device)
        syn_samples = normalise_samples(self.local.samples(f_syn, real=False))  # (n'_s, s, D)
        if assigner is not None and is_event:
            check_finite()  # events are rare: a host sync here is cheap, and NaN must not be grouped
            with torch.no_grad():
                layer_syn = (g_syn if g_syn is not None else f_syn).detach()
                if not bool(torch.isfinite(layer_syn).all()):
                    raise NonFiniteLossError(step, "non-finite synthetic features at an assignment event")
                syn_desc, syn_patch_feat = patch_descriptors(layer_syn, cfg.patch)
                info = assigner.run_event(syn_desc, syn_patch_feat, self.real_patch_feat)
            info["step"] = step
            self.event_log.append(info)
            logger.debug("assignment event %s", info)

        if self.t is None or step % cfg.freq_resample_every == 0:
            if self.freq_pool is None:
                self.t = sample_frequencies(cfg.num_freqs, self.dim, std=cfg.freq_std, generator=self.freq_gen,
                                            device=self.device)
            else:
                self.t_index = torch.randperm(self.freq_pool.shape[0], generator=self.freq_gen,
                                              device=self.device)[:cfg.num_freqs]
                self.t = self.freq_pool[self.t_index]
            self.real_stats = None
        real_samples = self.real_samples_by_transform[self.transform]
        real_flat = real_samples.reshape(-1, self.dim)
        if cfg.augment != "none":
            self.real_stats = None  # the real side of this step's transform
        t = self.t
        if cfg.fast_path and self.real_stats is None and self.freq_pool is not None:
            self.real_stats = self._pool_real_stats(real_flat)
        syn_flat = syn_samples.reshape(-1, self.dim)
        grouped = assigner is not None and step >= cfg.warmup and assigner.events_done > 0
        if grouped and self._cache_events != assigner.events_done:
            # Group ids per sample and paired patches change only at events: no per-step host sync.
            self._cache_events = assigner.events_done
            self._syn_seg = assigner.syn_group.repeat_interleave(self.per_patch)
            self._paired = (assigner.syn_pair >= 0).nonzero().flatten()
            self._pair_real = assigner.syn_pair[self._paired]
            self._pair_group = assigner.syn_group[self._paired]
        syn_seg = self._syn_seg if grouped else None
        if cfg.fast_path:
            if self.real_stats is None:
                self.real_stats = real_cf_stats(real_flat, self.real_seg, cfg.groups, t, cfg.real_chunk)
            loss_ins, loss_group = instance_and_group_losses(syn_flat, syn_seg, self.real_stats, t, cfg.groups,
                                                             cfg.alpha, cfg.beta)
        else:
            loss_ins, loss_group = instance_and_group_losses_looped(syn_flat, syn_seg, real_flat, self.real_seg,
                                                                    t, cfg.groups, cfg.alpha, cfg.beta)
        loss_pair, deform_reg = zero, zero
        if grouped and cfg.use_pair and len(self._paired):
            fn = pair_loss if cfg.fast_path else pair_loss_looped
            paired = self._paired
            loss_pair, deform_reg = fn(
                real_samples[self._pair_real], syn_samples[paired], self._pair_group, cfg.groups,
                None if self.deform_scale is None else self.deform_scale[paired],
                None if self.deform_shift is None else self.deform_shift[paired])
        total = zero
        if cfg.use_ins:
            total = total + cfg.w_ins * loss_ins
        if grouped:
            total = total + cfg.w_group * loss_group
            if cfg.use_pair:
                total = total + cfg.w_pair * (loss_pair + cfg.deform_l2 * deform_reg)
        return {"loss": total, "loss_ins": loss_ins, "loss_group": loss_group, "loss_pair": loss_pair,
                "deform_reg": deform_reg}

    def _pool_real_stats(self, real_flat: torch.Tensor) -> dict:
        """The real side at this draw's frequencies: columns of the pool's statistics, which are
        computed once per transform (the real samples and their groups never change)."""
        if self.transform not in self._pool_stats:
            self._pool_stats[self.transform] = real_cf_stats(real_flat, self.real_seg, self.cfg.groups,
                                                             self.freq_pool, self.cfg.real_chunk)
        return select_cf_stats(self._pool_stats[self.transform], self.t_index)

    def result(self, seconds: float, resumed_from: int | None) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.cfg
        with torch.no_grad():
            synthetic = self.pixels().detach().clamp(0, 1).float().cpu()
        log = {
            "n_real": int(self.n_real),
            "n_synthetic": int(self.n_syn),
            "seed": self.seed,
            "steps": self.records,
            "assignment_events": self.event_log,
            "resumed_from_step": resumed_from,
            "stopping": self.stopping,
            "seconds": round(seconds, 3),
            "device": str(self.device),
            "config": cfg.to_dict(),
            "diagnostics": {**summarise_diagnostics(self.records),
                            **({"reference": self.monitor.reference()} if self.monitor is not None else {})},
            "snapshots": self.snapshots,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
            "samples": {"real": int(self.real_flat.shape[0]), "per_patch": int(self.per_patch), "dim": int(self.dim),
                        "real_local_patches": int(self.n_real_patches),
                        "synthetic_local_patches": int(self.n_syn_patches)},
        }
        if self.assigner is not None:
            a = self.assigner
            log["groups"] = {"real_counts": torch.bincount(a.real_labels, minlength=cfg.groups).tolist(),
                             "quotas": a.quotas.tolist(), "grouped": int((a.syn_group >= 0).sum()),
                             "paired": int((a.syn_pair >= 0).sum())}
        return synthetic, log


def _run(reals: list[torch.Tensor], features: FeatureCall, cfg: CondenseConfig, *, seeds: list[int],
         n_synthetic: list[int], device: torch.device, progress: bool, resume_path: Path | None,
         checkpoint: dict[str, Any] | None, fingerprints: list[dict[str, Any]],
         on_log: Callable[[int, dict[str, Any]], None] | None,
         stop: _StopRequest) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    t_start = time.perf_counter()
    insts = [_Instance(r, features, cfg, seed=s, n_synthetic=n, device=device)
             for r, s, n in zip(reals, seeds, n_synthetic)]
    optimizer = torch.optim.Adam([p for inst in insts for p in inst.params], lr=cfg.lr,
                                 betas=tuple(cfg.adam_betas))
    events = set(cfg.assignment_steps())
    start_step, seconds_before, resumed_from = 0, 0.0, None
    if checkpoint is not None:
        for inst, state in zip(insts, checkpoint["instances"]):
            inst.load(state)
        optimizer.load_state_dict(_to(checkpoint["optimizer"], device))
        start_step = resumed_from = checkpoint["step"]
        seconds_before = checkpoint["seconds"]
        logger.info("resuming condensation from step %d (%s)", start_step, resume_path)

    def make_checkpoint(step: int) -> None:
        if resume_path is None:
            return
        save_checkpoint(resume_path, {
            "format": CHECKPOINT_FORMAT, "fingerprints": fingerprints, "step": step,
            "instances": [inst.state() for inst in insts],
            "optimizer": _to(optimizer.state_dict(), torch.device("cpu")),
            "seconds": seconds_before + time.perf_counter() - t_start,
        })

    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_detail: dict[str, torch.Tensor] = {}
    check_every = max(1, cfg.log_every) if defer_host_checks(device) else 1

    def check_finite() -> None:
        bad = int(first_bad)
        if bad >= 0:
            raise NonFiniteLossError(bad, ", ".join(f"{k}={float(v):.4g}" for k, v in bad_detail.items()))

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
            check_finite()
            make_checkpoint(step)
            name = signal.Signals(stop.signum).name
            where = f"checkpoint at {resume_path}" if resume_path else "no checkpoint path given"
            raise CondensationInterrupted(f"condensation interrupted by {name} at step {step} ({where})")
        lr_now = cfg.lr_at(step, plateau)
        end = milestones_end[1]
        for group in optimizer.param_groups:
            group["lr"] = lr_now

        is_event = step in events
        if step in snapshot_steps:
            for inst in insts:
                inst.take_snapshot(step)
        views = [inst.view(step, is_event) for inst in insts]
        images = views[0] if len(insts) == 1 else torch.cat(views)
        f_all, g_all = features(images)
        f_parts = f_all.split(sizes) if len(insts) > 1 else [f_all]
        g_parts = (g_all.split(sizes) if len(insts) > 1 else [g_all]) if g_all is not None else [None] * len(insts)
        parts = [inst.losses(step, f, g, is_event, check_finite)
                 for inst, f, g in zip(insts, f_parts, g_parts)]
        total = parts[0]["loss"] if len(parts) == 1 else torch.stack([p["loss"] for p in parts]).sum()

        # Non-finite guard: on the CPU checked every step; on an accelerator the first bad step is
        # kept on the device and checked at log/checkpoint/event steps (no host sync per step).
        bad_now = ~torch.isfinite(total.detach())
        first_bad = torch.where((first_bad < 0) & bad_now, torch.full_like(first_bad, step), first_bad)
        if step % check_every == 0 and bool(bad_now):
            bad_detail = {k: v.detach() for k, v in parts[0].items()} if len(parts) == 1 else \
                {f"instance{i}": p["loss"].detach() for i, p in enumerate(parts)}
            check_finite()

        logging_step = step % cfg.log_every == 0 or step == end - 1
        grad_norms = _term_grad_norms(insts, parts, cfg) if (logging_step and cfg.log_grad_norms) else None
        optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:
            total.backward()
            optimizer.step()
        if cfg.parametrisation == "clamp":
            with torch.no_grad():
                for inst in insts:
                    inst.syn_param.clamp_(0.0, 1.0)

        last = step == end - 1
        if step % cfg.log_every == 0 or last:
            check_finite()
            seconds = round(seconds_before + time.perf_counter() - t_start, 3)
            for i, (inst, p) in enumerate(zip(insts, parts)):
                record = {"step": step, **{k: float(v.detach()) for k, v in p.items()}, "lr": lr_now,
                          "seconds": seconds}
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
                            lr_now, rate, format_duration((end - step - 1) / max(rate, 1e-9)),
                            f" [instance {i}]" if len(insts) > 1 else "")
            if cfg.stop_on_plateau and plateau is None:
                plateau = _pack_plateau(insts, cfg)
                if plateau is not None:
                    milestones_end = cfg.schedule(plateau)
                    logger.info("held-out MMD reached a plateau at step %d: learning-rate decays at %s, end at %d",
                                plateau, milestones_end[0], milestones_end[1])
                    if bar is not None:
                        bar.total = milestones_end[1]
                        bar.refresh()
        if bar is not None:
            bar.update(1)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < milestones_end[1]:
            check_finite()
            make_checkpoint(step + 1)
        step += 1
    if bar is not None:
        bar.close()
    check_finite()
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


def plateau_step(records: list[dict[str, Any]], *, after: int, patience: int, tolerance: float,
                 key: str = "diag_mmd") -> int | None:
    """The step after the first logged step (>= `after`) at which `patience` logged values in a row
    have not improved the best value so far by more than `tolerance` (relative); None if never."""
    best, since = math.inf, 0
    for record in records:
        if record["step"] < after or key not in record or not math.isfinite(record[key]):
            continue
        value = record[key]
        if value < best * (1.0 - tolerance) or best == math.inf:
            best, since = min(best, value), 0
        else:
            best, since = min(best, value), since + 1
            if since >= patience:
                return record["step"] + 1
    return None


def _pack_plateau(insts: list[_Instance], cfg: CondenseConfig) -> int | None:
    """Packed instances share one learning rate: the pack's plateau is the last instance's."""
    if not cfg.stop_on_plateau:
        return None
    steps = [plateau_step(inst.records, after=cfg.last_assignment_step(), patience=cfg.plateau_patience,
                          tolerance=cfg.plateau_tolerance) for inst in insts]
    return None if any(s is None for s in steps) else max(steps)


def _term_grad_norms(insts: list[_Instance], parts: list[dict[str, torch.Tensor]],
                     cfg: CondenseConfig) -> list[dict[str, float]]:
    """Per instance, the norm of the pixel gradient of each weighted loss term (which term drives
    the patches); 0 for a term that is off or not yet active."""
    weights = {"loss_ins": cfg.w_ins * cfg.use_ins, "loss_group": cfg.w_group * cfg.use_group,
               "loss_pair": cfg.w_pair * cfg.use_pair}
    out = []
    for inst, p in zip(insts, parts):
        norms = {}
        for key, w in weights.items():
            term = p[key]
            if not term.requires_grad or w == 0:
                norms[f"grad_{key[5:]}"] = 0.0
                continue
            (g,) = torch.autograd.grad(w * term, inst.syn_param, retain_graph=True, allow_unused=True)
            norms[f"grad_{key[5:]}"] = 0.0 if g is None else float(g.norm())
        out.append(norms)
    return out
