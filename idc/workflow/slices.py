"""The config slices the rules pass as params. Snakemake reruns a job whose params changed (it
compares their text), so each slice holds what defines the job's result and nothing else, with
its keys in a fixed order."""

from __future__ import annotations

import json
from typing import Any

from idc.select.methods import selector_settings


def canonical(obj: Any) -> Any:
    """A config slice with its keys sorted at every level: Snakemake compares params by their
    text, so the order keys happen to have in a YAML file must not count as a change."""
    return json.loads(json.dumps(obj, sort_keys=True))


def network_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """What defines a trained network: architecture, constructor and training recipe."""
    return canonical({k: spec[k] for k in ("arch", "kwargs", "train")})


def network_build(spec: dict[str, Any]) -> dict[str, Any]:
    """What defines a network converted from released weights: architecture and constructor."""
    return canonical({k: spec[k] for k in ("arch", "kwargs")})


def crop_settings(crop: dict[str, Any]) -> dict[str, Any]:
    """What defines the patch store: the crop settings less the worker count."""
    return canonical({k: v for k, v in crop.items() if k != "workers"})


def validation_settings(test: dict[str, Any]) -> dict[str, Any]:
    """The test settings a training's validation uses."""
    return canonical({k: test[k] for k in ("crop_border", "test_y_channel")})


def selection_params(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """A selection job's settings: the baselines' with the dataset's own on top."""
    spec = config["datasets"][dataset]
    settings = {**config["baselines"], **spec["selection"]}  # the dataset's own settings win
    return {
        "method": spec["method"],
        "ratio": spec.get("ratio"),
        "n_splits": settings["n_splits"],
        **selector_settings(spec["method"], settings),
    }
