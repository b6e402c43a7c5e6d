"""Every hyper-parameter and ablation switch of IDC condensation, with the paper's defaults.

Paper references: section 3 (method), appendix B (grouping/pairing, warm-up), C.1 (values),
Table 2 (v1-v7), Table 4 (a0-a11), Table 7 / D.3 (x1-x3). Where the paper is silent the chosen
behaviour is a key here; config/README.md explains each choice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from idc.condense.budget import BUDGETS, allocate_synthetic

FEATURE_TRANSFORMS = ("rlff", "identity", "dct", "wavelet", "gaussian")
INITS = ("random", "real_noise", "real", "tiles")
AUGMENTS = ("none", "dihedral")
BN_MODES = ("batch", "real", "none")
FEATURE_LAYERS = ("last", "first")
DEFORMATIONS = ("affine", "none")
ASSIGN_ORDERS = ("nearest", "random")
PAIRINGS = ("hungarian", "greedy")
PARAMETRISATIONS = ("clamp", "sigmoid")
# Head-dimension paddings offered for the extractor's window attention (1: none; 8, 16: the
# alignments GPU matrix kernels want).
HEAD_DIM_MULTIPLES = (1, 8, 16)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _of_type(value: Any, kind: str) -> bool:
    """Whether `value` fits a field annotation (bool is not an int, an int is a float)."""
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(value, (list, tuple)) and all(_of_type(v, kind[5:-1]) for v in value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return kind != "str" or isinstance(value, str)


# Upper bounds of the sizes that allocate memory in proportion: far above the paper's values
# (num_freqs 1024, channels 256, Table 4's largest 512) and every shipped config, so only a typo
# (an extra three zeros) meets them, which would otherwise end in an out-of-memory error inside
# the job. The real side's characteristic functions alone take real_chunk x num_freqs floats.
MAX_SIZES = {"num_freqs": 16384, "channels": 16384}


@dataclass
class CondenseConfig:
    # --- data volume -------------------------------------------------------------------------
    ratio: float = 0.1  # condensation ratio r: about r N_c synthetic patches per instance (see budget)
    # How r N_c is rounded (idc/condense/budget.py): "equal" = the baselines' floor(r N) in total,
    # split over the images by largest remainder (an image may get 0); "ceil_per_image" =
    # max(1, ceil(r N_c)) per image (the earlier rule; more pairs than the baselines).
    budget: str = "equal"

    # --- optimisation (C.1) ------------------------------------------------------------------
    steps: int = 20000
    warmup: int = 4000  # steps with L = w_ins * L_ins only (Algorithm 1)
    lr: float = 1e-2  # Adam learning rate on the synthetic pixels
    milestones: list[int] = field(default_factory=lambda: [15000, 17000, 19000])
    gamma: float = 0.1
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # torch defaults (paper silent)

    # --- stopping when converged ----------------------------------------------------------------
    # Stop on a plateau of the held-out diagnostic MMD (not the training loss): once every
    # assignment event has happened, when `plateau_patience` logged steps in a row improve the best
    # MMD by less than `plateau_tolerance` (relative), the run enters its learning-rate decays at
    # once: the milestones and the end keep their proportions to the first milestone, rescaled so
    # the first milestone falls on the plateau step. Off: the literal `steps`.
    stop_on_plateau: bool = False
    plateau_patience: int = 4
    plateau_tolerance: float = 0.02

    # --- distribution loss (NCFD without sampling network) -----------------------------------
    alpha: float = 0.2  # amplitude weight
    beta: float = 0.8  # phase weight
    num_freqs: int = 1024  # frequencies t per step
    # t ~ N(0, freq_std^2 I), drawn from a seeded generator and redrawn every `freq_resample_every`
    # steps (1 = every step, as NCFM does without its sampling network).
    freq_std: float = 1.0
    freq_resample_every: int = 1
    # 0: fresh frequencies from N(0, freq_std^2 I) at every draw. K > 0: a pool of K * num_freqs
    # frequencies drawn once per instance, with the real side's characteristic functions (overall
    # and per group) computed once for the whole pool; each draw takes num_freqs of them at random.
    freq_pool: int = 0
    # Real-side characteristic functions are evaluated in chunks of this many samples (memory only).
    real_chunk: int = 65536

    # --- loss weights (C.1, Table 4) -----------------------------------------------------------
    w_ins: float = 300.0
    w_group: float = 300.0
    w_pair: float = 300000.0
    use_ins: bool = True
    use_group: bool = True
    use_pair: bool = True

    # --- local features (3.2, Tables 2/4/7) ----------------------------------------------------
    local_feature: bool = True  # apply the local filter bank (RLFF or alternative) to f
    unfold: bool = True  # samples are the p*p positions of each local patch (else one per patch)
    # "rlff" (paper), "identity" (x1: local identity filter E without Fourier), "dct" (x2: DCT-II
    # along E's output channels), "wavelet" (x3: undecimated Haar, resolution preserving),
    # "gaussian" (v1: original NCFD, whole flattened feature maps, t acts as the Gaussian projection).
    feature_transform: str = "rlff"
    kernel: int = 7  # k
    channels: int = 256  # C_out sampled filters
    patch: int = 4  # p
    # Batch-norm (no affine) on f before the filter bank: "batch" = each set by its own batch
    # statistics (real statistics computed once over all N real patches and then fixed; synthetic
    # statistics from the current synthetic batch every step); "real" = both sets by the fixed real
    # statistics; "none" = skipped.
    bn_mode: str = "batch"
    bn_eps: float = 1e-5
    wavelet_levels: int = 2  # undecimated Haar levels for "wavelet"

    # --- grouping / pairing (3.3, B, C.1) --------------------------------------------------------
    groups: int = 16  # M
    assign_interval: int = 400
    assign_times: int = 25
    # Layer whose (L2-normalised, p x p averaged) features give grouping/pairing distances:
    # "last" = the extractor's feature map f, "first" = output of extractor.layers[0] (a11).
    feature_layer: str = "last"
    kmeans_iters: int = 100
    kmeans_tol: float = 1e-6
    # Which ungrouped synthetic patches join at each assignment round: "nearest" = those closest
    # to a centroid with remaining quota first; "random" = a seeded random order.
    assign_order: str = "nearest"
    # One-to-one nearest pairing inside a group: "hungarian" = minimum total L2 distance
    # (scipy linear_sum_assignment); "greedy" = closest pairs first.
    pairing: str = "hungarian"

    # --- learned deformation before the pair loss (B) -------------------------------------------
    # "affine": per pair, a learnable per-channel scale (1 + a) and shift b applied to the real
    # samples of the paired patch before L1, regularised by deform_l2 * mean(a^2 + b^2).
    # "none": plain L1 between paired samples.
    deformation: str = "affine"
    deform_l2: float = 1.0

    # --- synthetic patches ----------------------------------------------------------------------
    # "real" (default): n distinct random real patches of the instance as they are; "random": uniform
    # noise in [0,1] (the literal reading of Algorithm 1's "randomly initialize", variant `literal`);
    # "real_noise": n distinct random real patches plus Gaussian noise of std init_noise, clipped to
    # [0,1]; "tiles": each patch a 2x2 mosaic of four random real patches of the instance, each
    # downscaled by 2 (area average), as NCFM's default initialisation does. The paper's "randomly"
    # does not say of what (NCFM, the NCFD authors' code, calls random real images "random" init);
    # docs/condensation-study.md measured every option: real patches win on every diagnostic.
    init: str = "real"
    init_noise: float = 0.1
    # Joint augmentation of real and synthetic patches: "dihedral" applies one seeded random
    # flip/rot90 (of the 8) per step to the synthetic patches, and the loss compares them with the
    # real features of the same transform (precomputed once: 8x the real-side memory). Assignment
    # events always see the untransformed patches. "none": no augmentation (the paper is silent).
    augment: str = "none"
    # "clamp": pixels are the parameters, clipped to [0,1] after every Adam step; "sigmoid":
    # parameters are logits, pixels = sigmoid(logits) (always inside (0,1)).
    parametrisation: str = "clamp"

    # --- engineering ----------------------------------------------------------------------------
    fast_path: bool = True  # vectorised group/pair losses (False: Python loop over groups)
    compile_extractor: bool = False  # torch.compile the extractor (GPU fast path)
    # torch.compile mode: "default", "reduce-overhead" (CUDA graphs: for the launch-bound
    # SwinIR-light step with static shapes), "max-autotune".
    compile_mode: str = "default"
    allow_tf32: bool = False  # TF32 matmuls/convolutions on CUDA (fast path; changes numerics)
    # Window attention of the extractor through scaled_dot_product_attention (same result up to
    # float rounding; on CUDA the memory-efficient kernel with the bias as attn_mask).
    fused_attention: bool = False
    # q, k, v of the extractor's window attention zero-padded to a multiple of this in the head
    # dimension (1: none; SwinIR-light's 10 -> 16 with 8): tensor-core-aligned operands on a GPU,
    # the same result up to float rounding (idc.archs.attention).
    attention_head_dim_multiple: int = 1
    # The extractor's forward pass under bf16 autocast (CUDA, or the CPU where it supports bf16);
    # features return as float32 and the losses, their statistics and Adam stay in float32.
    # Changes the numbers more than rounding: part of the result's definition, off by default.
    autocast_bf16: bool = False
    # Extractor weights and input patches in channels-last memory format (same result up to
    # float rounding; faster convolutions on tensor-core GPUs).
    channels_last: bool = False
    # Deterministic algorithms (torch.use_deterministic_algorithms, cuDNN deterministic, a fixed
    # cuBLAS workspace) for the run: on CUDA a rerun and a resumed run then give the same patches;
    # an op without a deterministic kernel raises instead of silently differing.
    deterministic: bool = False
    extract_batch: int = 32  # real patches per forward pass when extracting real features
    log_every: int = 100
    checkpoint_every: int = 1000
    # Quality diagnostics (idc.condense.diagnostics) at every logged step; `log_grad_norms` adds the
    # pixel-gradient norm of each weighted loss term (three extra backward passes per logged step).
    diagnostics: bool = True
    log_grad_norms: bool = False
    # Synthetic patches kept (uint8) at a few steps for the progress figure: the first this many.
    snapshot_patches: int = 4

    # ------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first out-of-range key."""

        def bad(key: str, why: str) -> None:
            raise ValueError(f"condense config: {key}={getattr(self, key)!r} {why}")

        # Types first: YAML's "false" is a string, and a non-empty string is truthy.
        for f in dataclasses.fields(self):
            if not _of_type(getattr(self, f.name), f.type):
                bad(f.name, "must be true or false" if f.type == "bool" else f"is not of type {f.type}")

        if not (0.0 < self.ratio < 1.0):
            bad("ratio", "must be in (0, 1)")
        for key in ("steps", "warmup", "assign_interval", "assign_times", "log_every",
                    "checkpoint_every", "kmeans_iters", "snapshot_patches", "freq_pool"):
            if int(getattr(self, key)) != getattr(self, key) or getattr(self, key) < 0:
                bad(key, "must be a non-negative integer")
        for key in ("num_freqs", "kernel", "channels", "patch", "groups", "extract_batch",
                    "freq_resample_every", "real_chunk", "wavelet_levels", "plateau_patience"):
            if int(getattr(self, key)) != getattr(self, key) or getattr(self, key) < 1:
                bad(key, "must be a positive integer")
        for key, most in MAX_SIZES.items():
            if getattr(self, key) > most:
                bad(key, f"must be at most {most} (memory grows with it; see MAX_SIZES)")
        if self.kernel % 2 != 1:
            bad("kernel", "must be odd (padding k//2 keeps the spatial size)")
        for key in ("lr", "freq_std", "bn_eps"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                bad(key, "must be a positive finite number")
        for key in ("alpha", "beta", "w_ins", "w_group", "w_pair", "deform_l2", "init_noise", "gamma",
                    "plateau_tolerance"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                bad(key, "must be a non-negative finite number")
        if self.alpha + self.beta <= 0:
            bad("alpha", "alpha + beta must be positive")
        if list(self.milestones) != sorted(self.milestones) or any(m < 0 for m in self.milestones):
            bad("milestones", "must be a sorted list of non-negative steps")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            bad("adam_betas", "must be two numbers in [0, 1)")
        for key, allowed in (("feature_transform", FEATURE_TRANSFORMS), ("init", INITS),
                             ("bn_mode", BN_MODES), ("feature_layer", FEATURE_LAYERS),
                             ("deformation", DEFORMATIONS), ("assign_order", ASSIGN_ORDERS),
                             ("pairing", PAIRINGS), ("parametrisation", PARAMETRISATIONS),
                             ("compile_mode", COMPILE_MODES), ("augment", AUGMENTS), ("budget", BUDGETS)):
            if getattr(self, key) not in allowed:
                bad(key, f"is not one of {', '.join(allowed)}")
        if self.attention_head_dim_multiple not in HEAD_DIM_MULTIPLES:
            bad("attention_head_dim_multiple", f"is not one of {', '.join(map(str, HEAD_DIM_MULTIPLES))}")
        if self.stop_on_plateau and not self.diagnostics:
            bad("stop_on_plateau", "needs diagnostics (the rule watches the held-out MMD)")
        if not (self.use_ins or self.use_group or self.use_pair):
            bad("use_ins", "at least one of use_ins/use_group/use_pair must be true")
        if self.use_pair and not self.use_group:
            # Pairs are formed inside groups (Table 2 footnote: pair loss builds on the groups).
            bad("use_pair", "needs use_group (pairs are formed inside groups)")
        if self.feature_transform == "wavelet" and self.local_feature and 2**self.wavelet_levels > self.kernel:
            bad("wavelet_levels", f"needs kernel >= {2 ** self.wavelet_levels} (Haar support), kernel={self.kernel}")
        if self.feature_transform == "gaussian":
            if self.local_feature or self.unfold or self.use_group:
                bad("feature_transform", "'gaussian' (global NCFD) needs local_feature, unfold and "
                    "use_group all false")
        # warmup + assign_interval * assign_times > steps is allowed (short runs, tests): the
        # assignments past the end never happen (`assignment_steps` leaves them out).

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, *, variant: str | None = None) -> "CondenseConfig":
        """Defaults, then `d`, then the named variant's own changes; unknown keys raise ValueError.

        The one order of every entry point (the workflow through `resolve_condense_config`,
        `python -m idc condense-image` through `idc.condense.stage.config_from_dict`, the settings
        study): `d` holds a run's settings for every variant, and a variant keeps its meaning on
        top of them (a2 has p = 8 whatever `d` says)."""
        values: dict[str, Any] = dict(d or {})
        if variant is not None:
            if variant not in VARIANTS:
                raise ValueError(f"condense config: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
            values.update(VARIANTS[variant])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"condense config: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_settings(self) -> dict[str, Any]:
        """The settings that define the result, in field order: every one but the execution
        settings (`EXECUTION_KEYS`). A workflow job's params, and part of a checkpoint's identity."""
        return split_execution_settings(self.to_dict())[0]

    # Convenience -------------------------------------------------------------------------------
    def synthetic_counts(self, patch_counts) -> list[int]:
        """Synthetic patches of each image under `budget`, given every image's real patch count."""
        return allocate_synthetic(patch_counts, self.ratio, self.budget).tolist()

    def n_synthetic(self, n_real: int) -> int:
        """Synthetic patches of one instance condensed on its own (as if it were the whole set):
        floor(r N) under "equal" (an error when that is 0), ceil(r N) under "ceil_per_image"."""
        return self.synthetic_counts([n_real])[0]

    def assignment_steps(self) -> list[int]:
        """Steps at which grouping/pairing events happen (see grouping.AssignmentSchedule)."""
        if not self.use_group:
            return []
        events = self.assign_times + (1 if self.use_pair else 0)
        return [s for s in (self.warmup + j * self.assign_interval for j in range(events)) if s < self.steps]

    def snapshot_steps(self) -> list[int]:
        """Steps whose synthetic patches (before that step's update) the progress figure shows;
        the final patches (after the last update) are kept as step `steps`."""
        if self.snapshot_patches == 0 or self.steps == 0:
            return []
        fractions = (0.0, 0.02, 0.1, 0.25, 0.5)
        return sorted({min(self.steps - 1, round(f * self.steps)) for f in fractions})

    def lr_at(self, step: int, plateau: int | None = None) -> float:
        """Learning rate used for the update of step `step` (0-based), MultiStepLR semantics, with
        the milestones of `schedule(plateau)`."""
        milestones, _ = self.schedule(plateau)
        return self.lr * self.gamma ** sum(1 for m in milestones if step >= m)

    def last_assignment_step(self) -> int:
        events = self.assignment_steps()
        return events[-1] if events else self.warmup

    def schedule(self, plateau: int | None = None) -> tuple[list[int], int]:
        """(milestones, end step). Without a plateau: the configured ones. With a plateau at step
        s before the first milestone m1: every milestone m -> s + (m - m1) s / m1 and the end
        likewise, so the decay phase keeps its length relative to the steps before it."""
        if plateau is None or plateau >= (self.milestones[0] if self.milestones else self.steps):
            return list(self.milestones), self.steps
        if not self.milestones:
            return [], plateau  # no decay phase: stop at the plateau
        m1 = self.milestones[0]
        scale = plateau / m1
        milestones = [plateau + round((m - m1) * scale) for m in self.milestones]
        return milestones, max(plateau + round((self.steps - m1) * scale), milestones[-1] + 1)


# Named overrides. Table 2: Local Feature / Unfolding / Instance / Group / Pair losses.
VARIANTS: dict[str, dict[str, Any]] = {
    "idc": {},
    # The paper read literally where our defaults follow the settings study instead
    # (docs/condensation-study.md, docs/deviations.md): synthetic patches start as uniform noise.
    "literal": dict(init="random"),
    # The study's best setting: the pair term's weight lowered 100x so its pixel gradient is of the
    # order of the group term's (at w_pair = 300k it is ~85x larger and undoes the warm-up's match).
    "balanced": dict(w_pair=3000.0),
    # Fresh frequencies at every step where the run's settings use a frequency pool (the check
    # that the pool gives the same result within replicate spread, config/mini.yaml).
    "fresh": dict(freq_pool=0),
    # The condensation's starting point: its initial patches (real ones under the default init),
    # not a single step taken. Up-sampled like every variant, it is the teacher-relabelling control
    # of IDC itself: what the synthetic set owes to relabelling rather than to condensation.
    "start": dict(steps=0),
    # v1: the original NCFD (global features; the Gaussian frequencies are the random projection).
    "v1": dict(feature_transform="gaussian", local_feature=False, unfold=False, use_group=False, use_pair=False),
    "v2": dict(unfold=False, use_group=False, use_pair=False),
    "v3": dict(use_group=False, use_pair=False),
    "v4": dict(use_pair=False),
    "v5": dict(local_feature=False),
    "v6": dict(unfold=False),
    "v7": dict(use_ins=False),
    # Table 4: one hyper-parameter changed from a0.
    "a0": {},
    "a1": dict(patch=2),
    "a2": dict(patch=8),
    "a3": dict(kernel=5),
    "a4": dict(kernel=9),
    "a5": dict(channels=128),
    "a6": dict(channels=512),
    "a7": dict(w_group=30.0),
    "a8": dict(w_group=3000.0),
    "a9": dict(w_pair=30000.0),
    "a10": dict(w_pair=3000000.0),
    "a11": dict(feature_layer="first"),
    # Table 7: alternatives to RLFF.
    "x1": dict(feature_transform="identity"),
    "x2": dict(feature_transform="dct"),
    "x3": dict(feature_transform="wavelet"),
}


# Settings that say how a run executes, not what it computes: the result is the same (up to float
# rounding for the fast path and fused attention). They are not part of a checkpoint's fingerprint,
# and the workflow passes them outside the rule's params, so changing one reruns nothing.
EXECUTION_KEYS = frozenset({"log_every", "checkpoint_every", "compile_extractor", "compile_mode", "extract_batch",
                            "real_chunk", "fast_path", "fused_attention", "attention_head_dim_multiple",
                            "diagnostics", "log_grad_norms", "snapshot_patches", "channels_last", "deterministic"})


def split_execution_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result-defining settings, execution settings) of a condensation settings mapping."""
    result = {k: v for k, v in values.items() if k not in EXECUTION_KEYS}
    execution = {k: v for k, v in values.items() if k in EXECUTION_KEYS}
    return result, execution


def resolve_condense_settings(params: dict[str, Any] | None, *, variant: str, ratio: float) -> CondenseConfig:
    """The settings of one condensation run of the workflow: paper defaults, then the run's
    `condense.params` (which apply to every variant), then the variant's own changes, then the
    dataset's ratio (no variant sets one), in the order of `CondenseConfig.from_dict`."""
    return CondenseConfig.from_dict({**(params or {}), "ratio": ratio}, variant=variant)


def resolve_condense_config(params: dict[str, Any] | None, *, variant: str, ratio: float) -> dict[str, Any]:
    """`resolve_condense_settings` as a dict."""
    return resolve_condense_settings(params, variant=variant, ratio=ratio).to_dict()


def job_settings(result: dict[str, Any], run_params: dict[str, Any] | None) -> CondenseConfig:
    """The settings a workflow job condenses with, made once in the job: the result-defining
    settings its rule resolved (`CondenseConfig.result_settings`, the job's params) and the
    execution settings of the run's `condense.params`. These travel in the config, outside the
    params, so that changing one reruns nothing; no variant changes one, so the run's own values
    are the ones the rule resolved."""
    execution = split_execution_settings(run_params or {})[1]
    return CondenseConfig.from_dict({**result, **execution})
