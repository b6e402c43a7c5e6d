"""Condensing one instance (image): real LR patches + frozen feature extractor -> synthetic patches.

`condense_instance` is pure apart from an optional resume checkpoint: tensors in, tensors and a
log dict out; deterministic for a seed on the CPU, and a run interrupted (SIGTERM/SIGUSR1, or
killed after a periodic checkpoint) and resumed gives exactly the uninterrupted result there.
"""

from __future__ import annotations

import contextlib
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
from torch import nn

from idc.condense.config import CondenseConfig
from idc.condense.features import LocalFeatures
from idc.condense.grouping import ProgressiveAssigner, kmeans, patch_descriptors
from idc.condense.losses import (instance_and_group_losses, instance_and_group_losses_looped,
                                 normalise_samples, pair_loss, pair_loss_looped, real_cf_stats,
                                 sample_frequencies)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "idc-condense-checkpoint/1"
# Keys that do not change the result; a checkpoint made with other values may be resumed.
_RESULT_NEUTRAL_KEYS = {"log_every", "checkpoint_every", "compile_extractor", "extract_batch", "real_chunk",
                        "fast_path"}


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
# Extractor access
# ----------------------------------------------------------------------------------------------
class LayerTap:
    """Captures the output of `module.layers[0]` (the first building block) as (N, C, H, W)."""

    def __init__(self, extractor: nn.Module) -> None:
        layers = getattr(extractor, "layers", None)
        if layers is None or len(layers) == 0:
            raise ValueError("condense config: feature_layer='first' needs an extractor with a `layers` list")
        self.out: torch.Tensor | None = None
        self._handle = layers[0].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.out = output[0] if isinstance(output, (tuple, list)) else output

    def take(self, h: int, w: int) -> torch.Tensor:
        out, self.out = self.out, None
        if out is None:
            raise RuntimeError("first-layer features were not captured (layers[0] not called by features())")
        if out.ndim == 4:
            return out[:, :, :h, :w]
        if out.ndim == 3:  # token layout (N, L, C) of transformer blocks, possibly padded to a window
            n, length, c = out.shape
            side = math.isqrt(length)
            if length == h * w:
                hp, wp = h, w
            elif side * side == length and side >= max(h, w):
                hp = wp = side
            else:
                raise RuntimeError(f"cannot map {length} tokens of layers[0] onto a {h}x{w} feature map")
            return out.transpose(1, 2).reshape(n, c, hp, wp)[:, :, :h, :w]
        raise RuntimeError(f"unexpected layers[0] output shape {tuple(out.shape)}")

    def close(self) -> None:
        self._handle.remove()


@torch.no_grad()
def extract_features(extractor: nn.Module, x: torch.Tensor, batch: int, tap: LayerTap | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    fs, gs = [], []
    for start in range(0, x.shape[0], batch):
        part = x[start:start + batch]
        f = extractor.features(part)
        fs.append(f)
        if tap is not None:
            gs.append(tap.take(f.shape[2], f.shape[3]))
    return torch.cat(fs), (torch.cat(gs) if tap is not None else None)


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


def _fingerprint(cfg: CondenseConfig, seed: int, real_lr: torch.Tensor) -> dict[str, Any]:
    d = {k: v for k, v in cfg.to_dict().items() if k not in _RESULT_NEUTRAL_KEYS}
    return {"config": d, "seed": int(seed), "real_shape": list(real_lr.shape),
            "real_sum": float(real_lr.double().sum())}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def _init_synthetic(real_lr: torch.Tensor, n: int, cfg: CondenseConfig, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(subseed(seed, "init"))
    shape = (n, *real_lr.shape[1:])
    if cfg.init == "random":
        return torch.rand(shape, generator=gen)
    picks = torch.randperm(real_lr.shape[0], generator=gen)[:n]
    noise = torch.randn(shape, generator=gen) * cfg.init_noise
    return (real_lr.detach().cpu().float()[picks] + noise).clamp(0, 1)


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
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Condense one instance. Returns (synthetic (n, 3, h, w) float32 in [0,1] on the CPU, log).

    n = ceil(cfg.ratio * N). The extractor is frozen (eval mode, no gradients to its weights);
    real features are computed once. With `resume_path`, state is checkpointed there every
    `cfg.checkpoint_every` steps and when SIGTERM/SIGUSR1 arrives (then CondensationInterrupted is
    raised at the next step boundary); an existing checkpoint is resumed. A non-finite loss raises
    NonFiniteLossError naming the step. `on_log(record)` is called for every logged step.
    """
    if isinstance(cfg, dict):
        cfg = CondenseConfig.from_dict(cfg)
    cfg.validate()
    _check_inputs(real_lr, extractor)
    device = torch.device(device)
    resume_path = Path(resume_path) if resume_path is not None else None
    n_real = real_lr.shape[0]
    n_syn = cfg.n_synthetic(n_real)
    fingerprint = _fingerprint(cfg, seed, real_lr)

    checkpoint = None
    if resume_path is not None and resume_path.exists():
        checkpoint = load_checkpoint(resume_path)
        if checkpoint["fingerprint"] != fingerprint:
            old = checkpoint["fingerprint"]["config"]
            diff = [k for k, v in fingerprint["config"].items() if old.get(k) != v]
            raise ValueError(f"condensation checkpoint {resume_path} was made with other settings "
                             f"({', '.join(diff) or 'seed or real patches'}); delete it to restart")

    tf32_prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    extractor = extractor.to(device).eval()
    grad_flags = [p.requires_grad for p in extractor.parameters()]
    for p in extractor.parameters():
        p.requires_grad_(False)
    tap = LayerTap(extractor) if (cfg.use_group and cfg.feature_layer == "first") else None
    try:
        if device.type == "cuda" and cfg.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        with _StopRequest() as stop:
            return _run(real_lr, extractor, cfg, seed=seed, device=device, n_syn=n_syn, tap=tap,
                        progress=progress, resume_path=resume_path, checkpoint=checkpoint,
                        fingerprint=fingerprint, on_log=on_log, stop=stop)
    finally:
        if tap is not None:
            tap.close()
        for p, flag in zip(extractor.parameters(), grad_flags):
            p.requires_grad_(flag)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_prev


def _run(real_lr: torch.Tensor, extractor: nn.Module, cfg: CondenseConfig, *, seed: int, device: torch.device,
         n_syn: int, tap: LayerTap | None, progress: bool, resume_path: Path | None,
         checkpoint: dict[str, Any] | None, fingerprint: dict[str, Any],
         on_log: Callable[[dict[str, Any]], None] | None, stop: _StopRequest) -> tuple[torch.Tensor, dict[str, Any]]:
    t_start = time.perf_counter()
    n_real = real_lr.shape[0]
    real = real_lr.to(device=device, dtype=torch.float32)

    # ---- real side, once ------------------------------------------------------------------------
    f_real, g_real = extract_features(extractor, real, cfg.extract_batch, tap)
    local = LocalFeatures.build(cfg, f_real.shape[1], seed=subseed(seed, "filters"), device=device)
    local.fit_real(f_real)
    with torch.no_grad():
        real_samples = normalise_samples(local.samples(f_real, real=True))  # (N'_r, s, D)
    per_patch, dim = real_samples.shape[1], real_samples.shape[2]
    real_flat = real_samples.reshape(-1, dim)
    n_real_patches = real_samples.shape[0]
    n_syn_patches = n_real_patches // n_real * n_syn

    assigner: ProgressiveAssigner | None = None
    real_seg = None
    real_patch_feat = None
    if cfg.use_group:
        layer_real = g_real if g_real is not None else f_real
        real_desc, real_patch_feat = patch_descriptors(layer_real, cfg.patch)
        km_gen = torch.Generator(device=device).manual_seed(subseed(seed, "kmeans"))
        centroids, labels = kmeans(real_desc, cfg.groups, generator=km_gen, iters=cfg.kmeans_iters, tol=cfg.kmeans_tol)
        assigner = ProgressiveAssigner(groups=cfg.groups, assign_times=cfg.assign_times, use_pair=cfg.use_pair,
                                       order=cfg.assign_order, pairing=cfg.pairing, real_labels=labels,
                                       centroids=centroids, n_syn=n_syn_patches)
        if cfg.assign_order == "random":
            gen = torch.Generator().manual_seed(subseed(seed, "assign"))
            assigner.random_order = torch.randperm(n_syn_patches, generator=gen).to(device)
    del f_real, g_real

    # ---- synthetic parameters and optimiser ----------------------------------------------------
    init = _init_synthetic(real_lr, n_syn, cfg, seed).to(device)
    if cfg.parametrisation == "sigmoid":
        init = torch.logit(init.clamp(1e-3, 1 - 1e-3))
    syn_param = nn.Parameter(init)
    params = [syn_param]
    deform_scale = deform_shift = None
    if cfg.use_pair and cfg.deformation == "affine":
        deform_scale = nn.Parameter(torch.zeros(n_syn_patches, dim, device=device))
        deform_shift = nn.Parameter(torch.zeros(n_syn_patches, dim, device=device))
        params += [deform_scale, deform_shift]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.adam_betas))
    freq_gen = torch.Generator(device=device).manual_seed(subseed(seed, "freqs"))
    events = set(cfg.assignment_steps())

    records: list[dict[str, Any]] = []
    event_log: list[dict[str, int]] = []
    start_step, seconds_before, t = 0, 0.0, None
    resumed_from = None
    if checkpoint is not None:
        with torch.no_grad():
            syn_param.copy_(checkpoint["syn_param"].to(device))
            if deform_scale is not None:
                deform_scale.copy_(checkpoint["deform_scale"].to(device))
                deform_shift.copy_(checkpoint["deform_shift"].to(device))
        optimizer.load_state_dict(_to(checkpoint["optimizer"], device))
        freq_gen.set_state(checkpoint["freq_gen"])
        t = None if checkpoint["t"] is None else checkpoint["t"].to(device)
        if assigner is not None:
            assigner.load_state_dict(_to(checkpoint["assigner"], device))
        records = checkpoint["records"]
        event_log = checkpoint["events"]
        start_step = resumed_from = checkpoint["step"]
        seconds_before = checkpoint["seconds"]
        logger.info("resuming condensation from step %d (%s)", start_step, resume_path)
    if assigner is not None:
        # after a resume: the checkpointed groups (k-means is not bit-reproducible on every GPU)
        real_seg = assigner.real_labels.repeat_interleave(per_patch)

    def make_checkpoint(step: int) -> None:
        if resume_path is None:
            return
        save_checkpoint(resume_path, {
            "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "step": step,
            "syn_param": syn_param.detach().cpu(),
            "deform_scale": None if deform_scale is None else deform_scale.detach().cpu(),
            "deform_shift": None if deform_shift is None else deform_shift.detach().cpu(),
            "optimizer": _to(optimizer.state_dict(), torch.device("cpu")),
            "freq_gen": freq_gen.get_state(), "t": None if t is None else t.cpu(),
            "assigner": None if assigner is None else _to(assigner.state_dict(), torch.device("cpu")),
            "records": records, "events": event_log,
            "seconds": seconds_before + time.perf_counter() - t_start,
        })

    def pixels() -> torch.Tensor:
        return torch.sigmoid(syn_param) if cfg.parametrisation == "sigmoid" else syn_param

    feat_fn = extractor.features
    if cfg.compile_extractor and tap is None:
        feat_fn = torch.compile(extractor.features)

    real_stats = None
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_detail: dict[str, torch.Tensor] = {}
    check_every = max(1, cfg.log_every) if defer_host_checks(device) else 1

    def check_finite() -> None:
        bad = int(first_bad)
        if bad >= 0:
            raise NonFiniteLossError(bad, ", ".join(f"{k}={float(v):.4g}" for k, v in bad_detail.items()))

    steps_iter = range(start_step, cfg.steps)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc="condense", unit="step", mininterval=5.0)
    zero = torch.zeros((), device=device)
    cache_events, syn_seg_cache, paired, pair_real, pair_group = -1, None, None, None, None
    for step in steps_iter:
        if stop.signum is not None:
            check_finite()
            make_checkpoint(step)
            name = signal.Signals(stop.signum).name
            where = f"checkpoint at {resume_path}" if resume_path else "no checkpoint path given"
            raise CondensationInterrupted(f"condensation interrupted by {name} at step {step} ({where})")
        lr_now = cfg.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_now

        images = pixels()
        f_syn = feat_fn(images)
        g_syn = tap.take(f_syn.shape[2], f_syn.shape[3]) if tap is not None else None
        syn_samples = normalise_samples(local.samples(f_syn, real=False))  # (n'_s, s, D)

        if assigner is not None and step in events:
            check_finite()  # events are rare: a host sync here is cheap, and NaN must not be grouped
            with torch.no_grad():
                layer_syn = (g_syn if g_syn is not None else f_syn).detach()
                if not bool(torch.isfinite(layer_syn).all()):
                    raise NonFiniteLossError(step, "non-finite synthetic features at an assignment event")
                syn_desc, syn_patch_feat = patch_descriptors(layer_syn, cfg.patch)
                info = assigner.run_event(syn_desc, syn_patch_feat, real_patch_feat)
            info["step"] = step
            event_log.append(info)
            logger.debug("assignment event %s", info)

        if t is None or step % cfg.freq_resample_every == 0:
            t = sample_frequencies(cfg.num_freqs, dim, std=cfg.freq_std, generator=freq_gen, device=device)
            real_stats = None
        syn_flat = syn_samples.reshape(-1, dim)
        grouped = assigner is not None and bool(step >= cfg.warmup) and assigner.events_done > 0
        if grouped and (cache_events != assigner.events_done):
            # Group ids per sample and paired patches change only at events: no per-step host sync.
            cache_events = assigner.events_done
            syn_seg_cache = assigner.syn_group.repeat_interleave(per_patch)
            paired = (assigner.syn_pair >= 0).nonzero().flatten()
            pair_real = assigner.syn_pair[paired]
            pair_group = assigner.syn_group[paired]
        syn_seg = syn_seg_cache if grouped else None
        if cfg.fast_path:
            if real_stats is None:
                real_stats = real_cf_stats(real_flat, real_seg, cfg.groups, t, cfg.real_chunk)
            loss_ins, loss_group = instance_and_group_losses(syn_flat, syn_seg, real_stats, t, cfg.groups,
                                                             cfg.alpha, cfg.beta)
        else:
            loss_ins, loss_group = instance_and_group_losses_looped(syn_flat, syn_seg, real_flat, real_seg, t,
                                                                    cfg.groups, cfg.alpha, cfg.beta)
        loss_pair, deform_reg = zero, zero
        if grouped and cfg.use_pair and len(paired):
            fn = pair_loss if cfg.fast_path else pair_loss_looped
            loss_pair, deform_reg = fn(
                real_samples[pair_real], syn_samples[paired], pair_group, cfg.groups,
                None if deform_scale is None else deform_scale[paired],
                None if deform_shift is None else deform_shift[paired])
        total = zero
        if cfg.use_ins:
            total = total + cfg.w_ins * loss_ins
        if grouped:
            total = total + cfg.w_group * loss_group
            if cfg.use_pair:
                total = total + cfg.w_pair * (loss_pair + cfg.deform_l2 * deform_reg)

        # Non-finite guard: on the CPU checked every step; on a GPU the first bad step is kept on
        # the device and checked at log/checkpoint steps (no host sync per step).
        bad_now = ~torch.isfinite(total.detach())
        first_bad = torch.where((first_bad < 0) & bad_now, torch.full_like(first_bad, step), first_bad)
        if step % check_every == 0 and bool(bad_now):
            bad_detail = {"loss": total.detach(), "loss_ins": loss_ins.detach(),
                          "loss_group": loss_group.detach(), "loss_pair": loss_pair.detach()}
            check_finite()

        optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:
            total.backward()
            optimizer.step()
        if cfg.parametrisation == "clamp":
            with torch.no_grad():
                syn_param.clamp_(0.0, 1.0)

        last = step == cfg.steps - 1
        if step % cfg.log_every == 0 or last:
            check_finite()
            record = {"step": step, "loss": float(total.detach()), "loss_ins": float(loss_ins.detach()),
                      "loss_group": float(loss_group.detach()), "loss_pair": float(loss_pair.detach()),
                      "deform_reg": float(deform_reg.detach()), "lr": lr_now,
                      "seconds": round(seconds_before + time.perf_counter() - t_start, 3)}
            records.append(record)
            if on_log is not None:
                on_log(record)
            logger.info("step %d/%d loss %.5g (ins %.4g group %.4g pair %.4g) lr %.3g", step, cfg.steps,
                        record["loss"], record["loss_ins"], record["loss_group"], record["loss_pair"], lr_now)
        if bar is not None:
            bar.update(1)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and not last:
            check_finite()
            make_checkpoint(step + 1)
    if bar is not None:
        bar.close()
    check_finite()

    with torch.no_grad():
        synthetic = pixels().detach().clamp(0, 1).float().cpu()
    log = {
        "n_real": int(n_real),
        "n_synthetic": int(n_syn),
        "seed": int(seed),
        "steps": records,
        "assignment_events": event_log,
        "resumed_from_step": resumed_from,
        "seconds": round(seconds_before + time.perf_counter() - t_start, 3),
        "device": str(device),
        "config": cfg.to_dict(),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "samples": {"real": int(real_flat.shape[0]), "per_patch": int(per_patch), "dim": int(dim),
                    "real_local_patches": int(n_real_patches), "synthetic_local_patches": int(n_syn_patches)},
    }
    if assigner is not None:
        log["groups"] = {"real_counts": torch.bincount(assigner.real_labels, minlength=cfg.groups).tolist(),
                         "quotas": assigner.quotas.tolist(),
                         "grouped": int((assigner.syn_group >= 0).sum()),
                         "paired": int((assigner.syn_pair >= 0).sum())}
    return synthetic, log
