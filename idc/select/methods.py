"""The ways of making a training set, and what each needs: the one place that the config schema's
`datasets.<name>.method`, the config cross-checks (`idc.config`), the workflow's rules
(`idc.workflow`), the cost plan (`idc.plan`), the GPU requests (`idc.resources`) and
the selection stage read them from.

This module imports nothing heavy, so validating a config does not load torch or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WHOLE = "whole"  # every real patch pair of the training set
SELECTION_METHODS = ("random", "herding", "kcenter", "dcsr")  # a subset of the real pairs (idc.select)
CONDENSATION_METHODS = ("idc",)  # synthetic LR patches, their HR from an up-sampler (idc.condense)
IMPORTED_METHODS = ("folder",)  # paired folders made elsewhere, imported (idc.data.paired)
METHODS = (WHOLE, *SELECTION_METHODS, *CONDENSATION_METHODS, *IMPORTED_METHODS)
# Methods whose pairs are real patches of the training set: they can take their HR side from the
# up-sampler teacher instead (`hr_source: teacher`, the relabelling control).
REAL_PATCH_METHODS = (WHOLE, *SELECTION_METHODS)
# Selections that work in a feature space: the baselines' teacher's (`baselines.feature_source:
# teacher`, the paper's) or the pixels'. The others need only the patch count (DCSR its images).
FEATURE_METHODS = ("herding", "kcenter")
# Config key (in `baselines`, or a dataset's own `selection`) -> keyword argument of the method's
# selector (idc.select.SELECTORS), per method: the only translation between the two names.
SELECTOR_SETTINGS: dict[str, dict[str, str]] = {
    "herding": {"herding_rule": "rule"},
    "dcsr": {"dcsr_threshold": "threshold", "dcsr_clusters": "n_clusters", "dcsr_allocation": "allocation"},
}


def is_selection(method: str) -> bool:
    return method in SELECTION_METHODS


def uses_teacher_features(method: str, feature_source: str) -> bool:
    """Whether selecting with `method` runs the baselines' feature teacher."""
    return method in FEATURE_METHODS and feature_source == "teacher"


def selector_settings(method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The selection stage's keyword arguments of `method` from the config's settings (the
    baselines' merged with the dataset's own): the feature source where the method uses one, then
    the selector's hyper-parameters under their keyword names, in `SELECTOR_SETTINGS` order."""
    if not is_selection(method):
        raise ValueError(f"{method!r} is not a selection method ({', '.join(SELECTION_METHODS)})")
    params: dict[str, Any] = {}
    if method in FEATURE_METHODS:
        params["feature_source"] = settings["feature_source"]
    for key, keyword in SELECTOR_SETTINGS.get(method, {}).items():
        params[keyword] = settings[key]
    return params
