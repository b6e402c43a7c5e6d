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

FEATURE_TRANSFORMS = ("rlff", "identity", "dct", "wavelet", "gaussian")
INITS = ("random", "real_noise")
BN_MODES = ("batch", "real", "none")
FEATURE_LAYERS = ("last", "first")
DEFORMATIONS = ("affine", "none")
ASSIGN_ORDERS = ("nearest", "random")
PAIRINGS = ("hungarian", "greedy")
PARAMETRISATIONS = ("clamp", "sigmoid")
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


@dataclass
class CondenseConfig:
    # --- data volume -------------------------------------------------------------------------
    ratio: float = 0.1  # condensation ratio r: n = ceil(r * N) synthetic patches per instance

    # --- optimisation (C.1) ------------------------------------------------------------------
    steps: int = 20000
    warmup: int = 4000  # steps with L = w_ins * L_ins only (Algorithm 1)
    lr: float = 1e-2  # Adam learning rate on the synthetic pixels
    milestones: list[int] = field(default_factory=lambda: [15000, 17000, 19000])
    gamma: float = 0.1
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # torch defaults (paper silent)

    # --- distribution loss (NCFD without sampling network) -----------------------------------
    alpha: float = 0.2  # amplitude weight
    beta: float = 0.8  # phase weight
    num_freqs: int = 1024  # frequencies t per step
    # t ~ N(0, freq_std^2 I), drawn from a seeded generator and redrawn every `freq_resample_every`
    # steps (1 = every step, as NCFM does without its sampling network).
    freq_std: float = 1.0
    freq_resample_every: int = 1
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
    # "random" (Algorithm 1: uniform noise in [0,1]); "real_noise": n distinct random real patches
    # of the instance plus Gaussian noise of std init_noise, clipped to [0,1].
    init: str = "random"
    init_noise: float = 0.1
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
    extract_batch: int = 32  # real patches per forward pass when extracting real features
    log_every: int = 100
    checkpoint_every: int = 1000
    seed: int = 0

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
                bad(f.name, f"is not of type {f.type}")

        if not (0.0 < self.ratio < 1.0):
            bad("ratio", "must be in (0, 1)")
        for key in ("steps", "warmup", "assign_interval", "assign_times", "log_every",
                    "checkpoint_every", "kmeans_iters"):
            if int(getattr(self, key)) != getattr(self, key) or getattr(self, key) < 0:
                bad(key, "must be a non-negative integer")
        for key in ("num_freqs", "kernel", "channels", "patch", "groups", "extract_batch",
                    "freq_resample_every", "real_chunk", "wavelet_levels"):
            if int(getattr(self, key)) != getattr(self, key) or getattr(self, key) < 1:
                bad(key, "must be a positive integer")
        if self.kernel % 2 != 1:
            bad("kernel", "must be odd (padding k//2 keeps the spatial size)")
        for key in ("lr", "freq_std", "bn_eps"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                bad(key, "must be a positive finite number")
        for key in ("alpha", "beta", "w_ins", "w_group", "w_pair", "deform_l2", "init_noise", "gamma"):
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
                             ("compile_mode", COMPILE_MODES)):
            if getattr(self, key) not in allowed:
                bad(key, f"is not one of {', '.join(allowed)}")
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
        if (self.use_group or self.use_pair) and self.warmup + self.assign_interval * self.assign_times > self.steps:
            # Allowed (short runs, tests), but the last assignments then never happen.
            pass

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, *, variant: str | None = None) -> "CondenseConfig":
        """Defaults, then the named variant's overrides, then `d`; unknown keys raise ValueError."""
        values: dict[str, Any] = {}
        if variant is not None:
            if variant not in VARIANTS:
                raise ValueError(f"condense config: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
            values.update(VARIANTS[variant])
        values.update(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"condense config: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Convenience -------------------------------------------------------------------------------
    def n_synthetic(self, n_real: int) -> int:
        """n = ceil(r N), at least 1; computed in a way robust to float error (0.1 * 150 = 15)."""
        return max(1, math.ceil(round(self.ratio * n_real, 9)))

    def assignment_steps(self) -> list[int]:
        """Steps at which grouping/pairing events happen (see grouping.AssignmentSchedule)."""
        if not self.use_group:
            return []
        events = self.assign_times + (1 if self.use_pair else 0)
        return [s for s in (self.warmup + j * self.assign_interval for j in range(events)) if s < self.steps]

    def lr_at(self, step: int) -> float:
        """Learning rate used for the update of step `step` (0-based), MultiStepLR semantics."""
        return self.lr * self.gamma ** sum(1 for m in self.milestones if step >= m)


# Named overrides. Table 2: Local Feature / Unfolding / Instance / Group / Pair losses.
VARIANTS: dict[str, dict[str, Any]] = {
    "idc": {},
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
                            "real_chunk", "fast_path", "fused_attention"})


def split_execution_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result-defining settings, execution settings) of a condensation settings mapping."""
    result = {k: v for k, v in values.items() if k not in EXECUTION_KEYS}
    execution = {k: v for k, v in values.items() if k in EXECUTION_KEYS}
    return result, execution


def resolve_condense_config(params: dict[str, Any] | None, *, variant: str, ratio: float) -> dict[str, Any]:
    """The settings of one condensation run of the workflow: paper defaults, then the run's
    `condense.params` (which apply to every variant), then the variant's own changes, then the
    dataset's ratio. A variant therefore keeps its meaning at any scale (a2 always has p = 8)."""
    if variant not in VARIANTS:
        raise ValueError(f"condense config: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    values = {**(params or {}), **VARIANTS[variant], "ratio": ratio}
    return CondenseConfig.from_dict(values).to_dict()
