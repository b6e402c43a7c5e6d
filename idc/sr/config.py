"""The settings of one SR training run (`TrainConfig`), with the configuration schema's defaults.

Apart from the training engine (`idc.sr.train`), which imports the distributed launcher
(`idc.sr.distributed`): the launcher takes a `TrainConfig` too, and imports it from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idc.schema import schema_defaults

# The configuration schema owns the defaults: of the training recipe (`train_settings`) and of the
# validation metric (the `test` section). Fields that are no workflow setting have their own.
_RECIPE = schema_defaults("$defs", "train_settings")
_METRIC = schema_defaults("properties", "test")

# `amp`: false (float32), true (on CUDA bf16 where the GPU supports it, else fp16; nothing on the
# CPU), or an explicit autocast dtype: "bf16" on any device, the CPU included, "fp16" on CUDA only.
AMP_MODES = (False, True, "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Settings that define a training run (everything except where files go and worker counts).

    Built from a validated config with :meth:`for_network`; its defaults are the schema's."""

    model_name: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = _RECIPE["steps"]
    batch_size: int = _RECIPE["batch_size"]
    gt_size: int = _RECIPE["gt_size"]
    lr: float = _RECIPE["lr"]
    betas: tuple[float, float] = tuple(_RECIPE["betas"])
    milestones: tuple[int, ...] = tuple(_RECIPE["milestones"])
    gamma: float = _RECIPE["gamma"]
    ema_decay: float = _RECIPE["ema_decay"]
    val_every: int = _RECIPE["val_every"]
    checkpoint_every: int = _RECIPE["checkpoint_every"]
    crop_border: int = _METRIC["crop_border"]
    test_y_channel: bool = _METRIC["test_y_channel"]
    seed: int = 0
    amp: bool | str = _RECIPE["amp"]  # one of AMP_MODES
    log_every: int = 100  # steps per point of the loss curve in train_log.json

    def __post_init__(self) -> None:
        # YAML gives lists; the run's identity (the checkpoint fingerprint) is the same either way.
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs or {}))
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "milestones", tuple(self.milestones))

    @classmethod
    def for_network(cls, spec: Mapping[str, Any], *, seed: int, metric: Mapping[str, Any] | None = None) -> TrainConfig:
        """The run of one network of a validated config: `spec` an entry of `teachers`/`models`
        (`arch`, `kwargs`, `train`), `metric` the `test` section (its crop_border, test_y_channel)."""
        metric = {k: v for k, v in (metric or {}).items() if k in ("crop_border", "test_y_channel")}
        return cls(model_name=spec["arch"], model_kwargs=spec.get("kwargs") or {}, seed=seed,
                   **dict(spec.get("train") or {}), **metric)

    def validate(self) -> None:
        """Raise ValueError naming the first out-of-range setting."""
        ints = {"steps": self.steps, "batch_size": self.batch_size, "gt_size": self.gt_size,
                "val_every": self.val_every, "checkpoint_every": self.checkpoint_every, "log_every": self.log_every}
        for key, value in ints.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not all(isinstance(m, (int, np.integer)) and m >= 1 for m in self.milestones):
            raise ValueError(f"milestones must be positive integers, got {list(self.milestones)!r}")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {list(self.milestones)!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay!r}")
        if self.crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {self.crop_border!r}")
        # A bool or one of the strings: 1 == True, and YAML's "false" is a string.
        if not (isinstance(self.amp, bool) or (isinstance(self.amp, str) and self.amp in AMP_MODES)):
            raise ValueError(f"amp must be one of {', '.join(str(m).lower() for m in AMP_MODES)}, got {self.amp!r}")
