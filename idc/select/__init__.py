"""Selection baselines of the IDC paper: Random, Herding, K-Center Greedy and DCSR.

Every selector has one signature,
``SELECTORS[name](features, n, *, rng, images=None, **hparams) -> np.ndarray``: n sorted unique
int64 indices into the N candidates; `features` (N, D) float, `images` (N, h, w, 3) uint8 LR
patches (DCSR needs them), `rng` a `numpy.random.Generator`. Inputs are never modified.
`select_in_splits` wraps any of them in the paper's 20-group protocol, and `select_baseline`
is the workflow stage (patch store in, index array out). `idc.select.methods` holds what the
rest of the project knows about the methods (which select, which use features, their settings).
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): `idc.select.methods`, which config validation reads, must not
# pull in torch and scikit-learn through this package.
_EXPORTS = {
    "pixel_features": "idc.select.features",
    "select_baseline": "idc.select.stage",
    "select_dcsr": "idc.select.dcsr",
    "select_herding": "idc.select.herding",
    "select_in_splits": "idc.select.protocol",
    "select_kcenter": "idc.select.kcenter",
    "select_random": "idc.select.random_selection",
    "split_shares": "idc.select.protocol",
    "teacher_features": "idc.select.features",
}

__all__ = ["SELECTORS", *sorted(_EXPORTS)]


def _selectors() -> dict[str, Any]:
    from idc.select.methods import SELECTION_METHODS

    return {method: getattr(importlib.import_module(_EXPORTS[f"select_{method}"]), f"select_{method}")
            for method in SELECTION_METHODS}


def __getattr__(name: str) -> Any:
    if name == "SELECTORS":
        value = _selectors()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'idc.select' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value
