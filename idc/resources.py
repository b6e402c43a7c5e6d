"""GPUs each workflow job asks for, from the validated config: one place that the workflow's
rules and the cost plan (``python -m idc plan``) both read, so the plan charges exactly what the
jobs request.

Inference jobs (up-sampling, relabelling, testing, importing a teacher) take one GPU at most,
whatever the training of their network used; a network whose jobs run on the CPU (``gpu: 0``)
makes its inference jobs CPU jobs too.
"""

from __future__ import annotations

from typing import Any

from idc.select.methods import uses_teacher_features


def inference_gpus(resources: dict[str, Any]) -> int:
    """One GPU for inference with a network whose training asks for ``resources["gpu"]``."""
    return min(1, int(resources["gpu"]))


def selection_uses_teacher(config: dict[str, Any], dataset: str) -> bool:
    """Whether the selection of ``dataset`` computes features with the baselines' teacher."""
    return uses_teacher_features(config["datasets"][dataset]["method"], config["baselines"]["feature_source"])


def selection_gpus(config: dict[str, Any], dataset: str) -> int:
    """A GPU only when the selection runs the feature teacher and that teacher has GPUs."""
    if not selection_uses_teacher(config, dataset):
        return 0
    return inference_gpus(config["teachers"][config["baselines"]["feature_teacher"]]["resources"])


def upsampler_gpus(config: dict[str, Any], dataset: str) -> int:
    """Up-sampling a condensed set or relabelling a real one: inference with its up-sampler."""
    return inference_gpus(config["teachers"][config["datasets"][dataset]["upsampler"]]["resources"])


def test_gpus(config: dict[str, Any], model: str) -> int:
    """Testing a model: inference on whole images."""
    return inference_gpus(config["models"][model]["resources"])


def condense_gpus(config: dict[str, Any]) -> int:
    """One condensation job (one image)."""
    return int(config["condense"]["resources"]["gpu"])
