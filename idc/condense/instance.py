"""One instance's part of a condensation run: its real side (features, local-feature filters and
samples, k-means groups, computed once), its parameters (synthetic patches, pairing
deformations), the losses of a step, snapshots and its result with the per-instance log.
Every random component draws from its own generator, seeded from the instance's seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idc import runloop
from idc.condense.checkpoint import to_device
from idc.condense.config import CondenseConfig
from idc.condense.diagnostics import QualityMonitor, summarise_diagnostics
from idc.condense.extractor import FeatureCall
from idc.condense.features import LocalFeatures
from idc.condense.grouping import ProgressiveAssigner, kmeans, patch_descriptors
from idc.condense.losses import (
    instance_and_group_losses,
    instance_and_group_losses_looped,
    normalise_samples,
    pair_loss,
    pair_loss_looped,
    real_cf_stats,
    sample_frequencies,
    select_cf_stats,
)
from idc.condense.timing import NO_TIMER, NoTimer
from idc.condense.upsample import to_uint8
from idc.provenance import PROVENANCE_KEY, provenance
from idc.runloop import derive_seed

logger = logging.getLogger(__name__)


class NonFiniteLossError(runloop.NonFiniteLossError):
    """The condensation loss (or the synthetic features at an assignment event) became NaN/inf;
    carries the first bad step."""

    def __init__(self, step: int, detail: str) -> None:
        super().__init__(f"non-finite condensation loss at step {step} ({detail}); "
                         "lower the learning rate or check the inputs", step=step)


def _random_picks(n_real: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """n real-patch indices, distinct while n <= n_real (then the permutation repeats)."""
    reps = -(-n // n_real)
    return torch.cat([torch.randperm(n_real, generator=gen) for _ in range(reps)])[:n]


def initial_real_picks(n_real: int, n: int, seed: int) -> np.ndarray:
    """Indices (into the instance's real patches) of the real patches that the "real" and
    "real_noise" inits start from: the first draw of the init generator, as `_init_synthetic`
    makes it. The relabelling control of IDC (variant start) is these patches with the teacher's HR."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "init"))
    return _random_picks(n_real, n, gen).numpy().astype(np.int64)


def _init_synthetic(real_lr: torch.Tensor, n: int, cfg: CondenseConfig, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(derive_seed(seed, "init"))
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



class Instance:
    """Everything one instance owns: real side, filters, groups/pairs, parameters, log."""

    def __init__(self, real_lr: torch.Tensor, features: FeatureCall, cfg: CondenseConfig, *, seed: int,
                 n_synthetic: int, device: torch.device) -> None:
        self.cfg, self.seed, self.device = cfg, int(seed), device
        self.n_real = real_lr.shape[0]
        self.n_syn = int(n_synthetic)
        real = real_lr.to(device=device, dtype=torch.float32)

        # ---- real side, once --------------------------------------------------------------------
        f_real, g_real = features.batched(real, cfg.extract_batch)
        self.local = LocalFeatures.build(cfg, f_real.shape[1], seed=derive_seed(seed, "filters"), device=device)
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
        self.aug_gen = torch.Generator().manual_seed(derive_seed(seed, "augment"))
        self.per_patch, self.dim = self.real_samples.shape[1], self.real_samples.shape[2]
        self.real_flat = self.real_samples.reshape(-1, self.dim)
        self.n_real_patches = self.real_samples.shape[0]
        self.n_syn_patches = self.n_real_patches // self.n_real * self.n_syn

        self.assigner: ProgressiveAssigner | None = None
        self.real_patch_feat = None
        if cfg.use_group:
            layer_real = g_real if g_real is not None else f_real
            real_desc, self.real_patch_feat = patch_descriptors(layer_real, cfg.patch)
            km_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "kmeans"))
            centroids, labels = kmeans(real_desc, cfg.groups, generator=km_gen, iters=cfg.kmeans_iters,
                                       tol=cfg.kmeans_tol)
            self.assigner = ProgressiveAssigner(groups=cfg.groups, assign_times=cfg.assign_times,
                                                use_pair=cfg.use_pair, order=cfg.assign_order, pairing=cfg.pairing,
                                                real_labels=labels, centroids=centroids, n_syn=self.n_syn_patches)
            if cfg.assign_order == "random":
                gen = torch.Generator().manual_seed(derive_seed(seed, "assign"))
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
        self.freq_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "freqs"))
        self.t: torch.Tensor | None = None
        self.t_index: torch.Tensor | None = None
        self.real_stats: dict | None = None
        self.freq_pool: torch.Tensor | None = None
        self._pool_stats: dict[int, dict] = {}  # transform -> real CF statistics of the whole pool
        if cfg.freq_pool:
            pool_gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "freq_pool"))
            self.freq_pool = sample_frequencies(cfg.freq_pool * cfg.num_freqs, self.dim, std=cfg.freq_std,
                                                generator=pool_gen, device=device)
        self.records: list[dict[str, Any]] = []
        self.event_log: list[dict[str, int]] = []
        self.monitor = QualityMonitor(real_lr, seed=derive_seed(seed, "diagnostics")) if cfg.diagnostics else None
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
                "assigner": None if self.assigner is None else to_device(self.assigner.state_dict(), cpu),
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
            self.assigner.load_state_dict(to_device(state["assigner"], self.device))
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
               check_finite: Callable[[], None], timer: NoTimer = NO_TIMER) -> dict[str, torch.Tensor]:
        """This step's weighted total and its terms; `timer` times the parts (idc.condense.timing)."""
        cfg, assigner = self.cfg, self.assigner
        zero = torch.zeros((), device=self.device)
        with timer.part("samples"):
            syn_samples = normalise_samples(self.local.samples(f_syn, real=False))  # (n'_s, s, D)
        if self.assigner is not None and is_event:
            with timer.part("assignment"):
                self._assignment_event(step, f_syn, g_syn, check_finite)
        with timer.part("frequencies"):
            self._draw_frequencies(step)
        real_samples = self.real_samples_by_transform[self.transform]
        real_flat = real_samples.reshape(-1, self.dim)
        if cfg.augment != "none":
            self.real_stats = None  # the real side of this step's transform
        t = self.t
        with timer.part("real_statistics"):
            if cfg.fast_path and self.real_stats is None:
                self.real_stats = (self._pool_real_stats(real_flat) if self.freq_pool is not None else
                                   real_cf_stats(real_flat, self.real_seg, cfg.groups, t, cfg.real_chunk))
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
        with timer.part("loss_ins_group"):
            if cfg.fast_path:
                loss_ins, loss_group = instance_and_group_losses(syn_flat, syn_seg, self.real_stats, t, cfg.groups,
                                                                 cfg.alpha, cfg.beta)
            else:  # the real side is recomputed inside the per-group loop
                loss_ins, loss_group = instance_and_group_losses_looped(syn_flat, syn_seg, real_flat, self.real_seg,
                                                                        t, cfg.groups, cfg.alpha, cfg.beta)
        loss_pair, deform_reg = zero, zero
        with timer.part("loss_pair"):
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

    def _assignment_event(self, step: int, f_syn: torch.Tensor, g_syn: torch.Tensor | None,
                          check_finite: Callable[[], None]) -> None:
        """Grouping and pairing at an event step (cfg.assignment_steps), on the untransformed patches."""
        check_finite()  # events are rare: a host sync here is cheap, and NaN must not be grouped
        with torch.no_grad():
            layer_syn = (g_syn if g_syn is not None else f_syn).detach()
            if not bool(torch.isfinite(layer_syn).all()):
                raise NonFiniteLossError(step, "non-finite synthetic features at an assignment event")
            syn_desc, syn_patch_feat = patch_descriptors(layer_syn, self.cfg.patch)
            info = self.assigner.run_event(syn_desc, syn_patch_feat, self.real_patch_feat)
        info["step"] = step
        self.event_log.append(info)
        logger.debug("assignment event %s", info)

    def _draw_frequencies(self, step: int) -> None:
        """This step's frequencies: drawn anew every cfg.freq_resample_every steps (from the pool
        where there is one), which also retires the real side's statistics of the old ones."""
        cfg = self.cfg
        if self.t is None or step % cfg.freq_resample_every == 0:
            if self.freq_pool is None:
                self.t = sample_frequencies(cfg.num_freqs, self.dim, std=cfg.freq_std, generator=self.freq_gen,
                                            device=self.device)
            else:
                self.t_index = torch.randperm(self.freq_pool.shape[0], generator=self.freq_gen,
                                              device=self.device)[:cfg.num_freqs]
                self.t = self.freq_pool[self.t_index]
            self.real_stats = None

    def _pool_real_stats(self, real_flat: torch.Tensor) -> dict:
        """The real side at this draw's frequencies: columns of the pool's statistics, which are
        computed once per transform (the real samples and their groups never change)."""
        if self.transform not in self._pool_stats:
            self._pool_stats[self.transform] = real_cf_stats(real_flat, self.real_seg, self.cfg.groups,
                                                             self.freq_pool, self.cfg.real_chunk)
        return select_cf_stats(self._pool_stats[self.transform], self.t_index)

    def term_grad_norms(self, part: dict[str, torch.Tensor]) -> dict[str, float]:
        """The norm of the pixel gradient of each weighted loss term of `part` (this step's
        losses): which term drives the patches; 0 for a term that is off or not yet active."""
        cfg = self.cfg
        weights = {"loss_ins": cfg.w_ins * cfg.use_ins, "loss_group": cfg.w_group * cfg.use_group,
                   "loss_pair": cfg.w_pair * cfg.use_pair}
        norms = {}
        for key, w in weights.items():
            term = part[key]
            if not term.requires_grad or w == 0:
                norms[f"grad_{key[5:]}"] = 0.0
                continue
            (g,) = torch.autograd.grad(w * term, self.syn_param, retain_graph=True, allow_unused=True)
            norms[f"grad_{key[5:]}"] = 0.0 if g is None else float(g.norm())
        return norms

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
            PROVENANCE_KEY: provenance(seeds={"instance_seed": self.seed}, config=cfg.to_dict()),
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

