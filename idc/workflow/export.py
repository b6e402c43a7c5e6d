"""Exported datasets: what the export job reads and the card that says how the set was made."""

from __future__ import annotations

from typing import Any

from idc.runloop import derive_seed
from idc.select.methods import SELECTION_METHODS
from idc.workflow.data import TrainingImages
from idc.workflow.datasets import CondensationRuns, dataset_store
from idc.workflow.paths import RunPaths
from idc.workflow.slices import canonical, crop_settings, network_spec, selection_params


def export_inputs(paths: RunPaths, datasets: dict[str, Any], dataset: str) -> dict[str, str]:
    """The dataset's patch store, the real store (its images' names) and, for IDC, the
    memorisation report the card quotes."""
    inputs = {**dataset_store(paths, datasets, dataset), "real": paths.store}
    if datasets[dataset]["method"] == "idc":
        inputs["memorisation"] = f"{paths.results}/datasets/{dataset}.memorisation.json"
    if datasets[dataset]["method"] == "folder":
        inputs.pop("real")  # an imported set names its own images
    return inputs


def _content(dataset: str, spec: dict[str, Any]) -> str:
    """One sentence on what the pairs of a dataset are."""
    method = spec["method"]
    return {
        "whole": "every real patch pair of the training set",
        "idc": (
            f"LR: synthetic patches condensed by IDC (variant {spec.get('variant')}); "
            f"HR: their up-sampling by the teacher {spec.get('upsampler')}"
        ),
        **(
            {
                method: f"LR: real patches ({method}); HR: the teacher {spec['upsampler']}'s "
                "up-sampling of them (relabelling control)"
            }
            if spec["hr_source"] == "teacher"
            else {}
        ),
        "folder": "patch pairs imported from paired folders",
    }.get(method, f"real patch pairs selected by {method}")


def export_card(config: dict[str, Any], dataset: str, *, training: TrainingImages,
                condensations: CondensationRuns) -> dict[str, Any]:
    """What the card says about how the set was made: its config slice and seeds."""
    from idc.data.paired import licence_of

    spec = config["datasets"][dataset]
    method, replicate = spec["method"], spec["replicate"]
    made_by: dict[str, Any] = {"dataset": canonical(spec)}
    seeds: dict[str, Any] = {"master": config["seed"], "replicate": replicate}
    if method in SELECTION_METHODS:
        made_by["selection"] = selection_params(config, dataset)
        seeds["selection"] = derive_seed(config["seed"], 3, replicate, method)
    if method == "idc":
        ckey = condensations.key(dataset)
        made_by["condense"] = condensations.settings(ckey).result_settings()
        made_by["extractor"] = network_spec(config["teachers"][config["condense"]["extractor"]])
        made_by["upsampler"] = network_spec(config["teachers"][spec["upsampler"]])
        seeds["condense_image"] = {
            s: derive_seed(config["seed"], 2, replicate, training.index[s]) for s in condensations.images(dataset)
        }
        seeds["upsample"] = config["seed"]
    if method != "folder":
        made_by["crop"] = crop_settings(config["data"]["crop"])
    source = "folder" if method == "folder" else config["data"]["trainset"]["source"]
    # Key order is the card's reading order (fixed here, so the params text is stable).
    return {
        "name": dataset,
        "run": config["run"],
        "method": method,
        "ratio": spec.get("ratio"),
        "content": _content(dataset, spec),
        "source": {
            "kind": source,
            "where": spec["hr"] if method == "folder" else training.hr_dir,
            "licence": config["export"]["licence"] or licence_of(source),
        },
        "config": canonical(made_by),
        "seeds": seeds,
    }
