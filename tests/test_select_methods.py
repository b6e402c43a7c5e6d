"""What the project knows about the methods is written once (idc.select.methods) and agrees with
the config schema and the selectors it names."""

from __future__ import annotations

import inspect
import subprocess
import sys

from idc.config import load_schema
from idc.select.methods import (
    FEATURE_METHODS,
    METHODS,
    REAL_PATCH_METHODS,
    SELECTION_METHODS,
    SELECTOR_SETTINGS,
    selector_settings,
    uses_teacher_features,
)


def test_the_schema_offers_exactly_the_methods():
    schema = load_schema()
    assert tuple(schema["$defs"]["dataset"]["properties"]["method"]["enum"]) == METHODS


def test_every_selection_has_a_selector_and_its_settings_are_its_keywords():
    from idc.select import SELECTORS

    assert tuple(SELECTORS) == SELECTION_METHODS
    assert set(FEATURE_METHODS) < set(SELECTION_METHODS) and set(SELECTION_METHODS) < set(REAL_PATCH_METHODS)
    schema = load_schema()
    per_dataset = set(schema["$defs"]["dataset"]["properties"]["selection"]["properties"])
    assert per_dataset == {key for keys in SELECTOR_SETTINGS.values() for key in keys}
    for method, keys in SELECTOR_SETTINGS.items():
        keywords = {n for n, p in inspect.signature(SELECTORS[method]).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert set(keys.values()) <= keywords, method
        assert set(keys) <= set(schema["properties"]["baselines"]["properties"]), method


def test_selector_settings_translate_config_keys():
    settings = {"feature_source": "teacher", "herding_rule": "deepcore", "dcsr_threshold": "median",
                "dcsr_clusters": 8, "dcsr_allocation": "equal"}
    assert selector_settings("random", settings) == {}
    assert selector_settings("kcenter", settings) == {"feature_source": "teacher"}
    assert selector_settings("herding", settings) == {"feature_source": "teacher", "rule": "deepcore"}
    assert list(selector_settings("dcsr", settings)) == ["threshold", "n_clusters", "allocation"]
    assert uses_teacher_features("herding", "teacher") and not uses_teacher_features("herding", "pixels")
    assert not uses_teacher_features("dcsr", "teacher")


def test_reading_the_method_facts_loads_neither_torch_nor_scikit_learn():
    code = ("import sys, idc.config, idc.select.methods, idc.resources; "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
