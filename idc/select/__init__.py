"""Selection baselines of the IDC paper: Random, Herding, K-Center Greedy and DCSR.

Every selector has one signature,
``SELECTORS[name](features, n, *, rng, images=None, **hparams) -> np.ndarray``: n sorted unique
int64 indices into the N candidates; `features` (N, D) float, `images` (N, h, w, 3) uint8 LR
patches (DCSR needs them), `rng` a `numpy.random.Generator`. Inputs are never modified.
`select_in_splits` wraps any of them in the paper's 20-group protocol, and `select_baseline`
is the workflow stage (patch store in, index array out).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from idc.select.dcsr import select_dcsr
from idc.select.features import pixel_features, teacher_features
from idc.select.herding import select_herding
from idc.select.kcenter import select_kcenter
from idc.select.protocol import select_in_splits, split_shares
from idc.select.random_selection import select_random
from idc.select.stage import select_baseline

SELECTORS: dict[str, Callable[..., np.ndarray]] = {
    "random": select_random,
    "herding": select_herding,
    "kcenter": select_kcenter,
    "dcsr": select_dcsr,
}

__all__ = [
    "SELECTORS",
    "pixel_features",
    "select_baseline",
    "select_dcsr",
    "select_herding",
    "select_in_splits",
    "select_kcenter",
    "select_random",
    "split_shares",
    "teacher_features",
]
