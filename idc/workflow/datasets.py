"""The datasets of a run: which jobs make each one, the condensation runs of the IDC datasets
(their keys, settings and images), the patch stores the SR models train on, and the folders of
imported (`method: folder`) datasets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from idc.condense.config import CondenseConfig, resolve_condense_settings
from idc.config import ConfigError
from idc.select.methods import CONDENSATION_METHODS, SELECTION_METHODS
from idc.workflow.data import TrainingImages, checked_folder
from idc.workflow.paths import RunPaths

# Folder name of a condensation run: variant, ratio (positional notation) and replicate.
CONDENSE_KEY = r"[A-Za-z0-9]+_r[0-9.]+_s[0-9]+"
_CONDENSE_KEY_PARTS = re.compile(r"([A-Za-z0-9]+)_r([0-9.]+)_s([0-9]+)")


def selection_datasets(datasets: dict[str, Any]) -> list[str]:
    """Datasets made by a selection baseline (an index array into the whole store)."""
    return [k for k, d in datasets.items() if d["method"] in SELECTION_METHODS]


def condensation_datasets(datasets: dict[str, Any]) -> list[str]:
    """Datasets made by condensation (IDC)."""
    return [k for k, d in datasets.items() if d["method"] in CONDENSATION_METHODS]


def folder_imports(datasets: dict[str, Any]) -> list[str]:
    """The folder datasets imported: replicates of a folder dataset train on one import (the
    folder is the same; only the SR model seed differs), made under the entry's own key."""
    return [k for k, d in datasets.items() if d["method"] == "folder" and (d["replicate_of"] or k) == k]


def relabelled_datasets(datasets: dict[str, Any]) -> list[str]:
    """Real-patch datasets whose HR side is the up-sampler teacher's (the relabelling control)."""
    return [k for k, d in datasets.items() if d["hr_source"] == "teacher"]


def condense_key(spec: dict[str, Any]) -> str:
    """Folder of one condensation run: variant and ratio define the synthetic LR patches, the
    up-sampler does not, so datasets differing only in up-sampler share one condensation."""
    # Positional notation: str(1e-05) has an exponent, which the key's pattern does not allow.
    ratio = np.format_float_positional(spec["ratio"], trim="-")
    return f"{spec['variant']}_r{ratio}_s{spec['replicate']}"


def parse_condense_key(ckey: str) -> tuple[str, float, int]:
    """(variant, ratio, replicate) of a condensation folder name."""
    match = _CONDENSE_KEY_PARTS.fullmatch(ckey)
    if match is None:
        raise ValueError(f"not a condensation key (variant_r<ratio>_s<replicate>): {ckey!r}")
    return match.group(1), float(match.group(2)), int(match.group(3))


class CondensationRuns:
    """The condensation runs of a run's IDC datasets. Each run's settings are resolved once
    (paper defaults, `condense.params`, the variant, the ratio) and serve the budget shares here,
    the job's params and the export card alike."""

    def __init__(self, config: dict[str, Any], training: TrainingImages):
        self._params = config["condense"]["params"]
        self._datasets = config["datasets"]
        self._training = training
        self._settings: dict[str, CondenseConfig] = {}
        self._pack_numbers: dict[tuple[str, int], dict[str, int]] = {}

    def key(self, dataset: str) -> str:
        return condense_key(self._datasets[dataset])

    def settings(self, ckey: str) -> CondenseConfig:
        """The resolved settings of the run `ckey` (the same object on every call)."""
        if ckey not in self._settings:
            variant, ratio, _ = parse_condense_key(ckey)
            self._settings[ckey] = resolve_condense_settings(self._params, variant=variant, ratio=ratio)
        return self._settings[ckey]

    def shares(self, ckey: str) -> list[int]:
        """Synthetic patches of every training image under the run's budget rule, as each
        condensation job computes them from the store (the same counts, the same rule); needs the
        patch counts (images on disk)."""
        return self.settings(ckey).synthetic_counts(self._training.patch_counts)

    def images(self, dataset: str) -> list[str]:
        """The images condensed for an IDC dataset: the first `images` of the training set, less
        those whose budget share is 0 when the patch counts are known before cropping (at r = 1%
        most images keep no pair: a job each would only write an empty file)."""
        k = self._datasets[dataset]["images"]
        stems = self._training.stems
        images = stems if k is None else stems[:k]
        if self._training.patch_counts is None:
            return images
        shares = self.shares(self.key(dataset))
        return [s for s in images if shares[self._training.index[s]] > 0]

    def run_images(self, ckey: str) -> list[str]:
        """Every image the run `ckey` condenses for any of its datasets, in training order."""
        needed = {s for d in condensation_datasets(self._datasets) if self.key(d) == ckey for s in self.images(d)}
        return [s for s in self._training.stems if s in needed]

    def packs(self, ckey: str, size: int) -> list[list[str]]:
        """The run's images in packs of `size` (`condense.pack`), in training order: one job
        condenses a pack in one loop. The last pack may be smaller."""
        images = self.run_images(ckey)
        return [images[i:i + size] for i in range(0, len(images), size)]

    def pack_of(self, ckey: str, image: str, size: int) -> int:
        """The number of the pack that condenses `image` in the run `ckey` (asked once per image
        job while the DAG is built: the numbering is made once per run and pack size)."""
        if (ckey, size) not in self._pack_numbers:
            self._pack_numbers[ckey, size] = {s: n for n, pack in enumerate(self.packs(ckey, size)) for s in pack}
        numbers = self._pack_numbers[ckey, size]
        if image not in numbers:
            raise ValueError(f"image {image!r} is not condensed by the run {ckey!r}")
        return numbers[image]


def dataset_store(paths: RunPaths, datasets: dict[str, Any], dataset: str) -> dict[str, str]:
    """(store, indices) the SR models of `dataset` train on."""
    spec = datasets[dataset]
    if spec["method"] == "folder":
        return {"store": paths.dataset(spec["replicate_of"] or dataset)}
    if spec["method"] == "idc" or spec["hr_source"] == "teacher":
        return {"store": paths.dataset(dataset)}
    if spec["method"] == "whole":
        return {"store": paths.store}
    return {"store": paths.store, "indices": paths.indices(dataset)}


def selection_inputs(config: dict[str, Any], paths: RunPaths, dataset: str) -> dict[str, str]:
    """What a selection reads: the whole store, the feature teacher when its method uses one, and
    the store (and indices) of the set whose pair count it takes (`pairs_of`), counted by the job
    once that set exists."""
    from idc.resources import selection_uses_teacher

    inputs = {"store": paths.store}
    if selection_uses_teacher(config, dataset):
        inputs["teacher"] = paths.teacher(config["baselines"]["feature_teacher"])
    sized_by = config["datasets"][dataset].get("pairs_of")
    if sized_by:
        other = dataset_store(paths, config["datasets"], sized_by)
        inputs["pairs_of"] = other["store"]
        if "indices" in other:
            inputs["pairs_of_indices"] = other["indices"]
    return inputs


def relabel_inputs(paths: RunPaths, datasets: dict[str, Any], dataset: str) -> dict[str, str]:
    """What relabelling a real-patch dataset reads: the whole store, its up-sampler and, for a
    selection, its indices."""
    spec = datasets[dataset]
    inputs = {"store": paths.store, "upsampler": paths.teacher(spec["upsampler"])}
    if spec["method"] != "whole":
        inputs["indices"] = paths.indices(dataset)
    return inputs


def check_folder_datasets(datasets: dict[str, Any]) -> None:
    """ConfigError naming the key of an imported dataset's missing folder or meta_info file."""
    for name in folder_imports(datasets):
        spec = datasets[name]
        checked_folder(f"datasets.{name}.hr", spec["hr"])
        if spec.get("lr"):
            checked_folder(f"datasets.{name}.lr", spec["lr"])
        if spec.get("meta_info") and not Path(spec["meta_info"]).is_file():
            raise ConfigError(f"config key datasets.{name}.meta_info: file {spec['meta_info']} does not exist")


def visible_files(folder: str | Path) -> list[str]:
    """Every visible file of a folder, in name order (hidden ones are never read)."""
    return sorted(str(p) for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))


def folder_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    """The folders of a `method: folder` dataset and every file in them: rewriting an image
    changes its own mtime, not its folder's, so only the files make the import rerun."""
    inputs = {"hr": spec["hr"], "hr_files": visible_files(spec["hr"])}
    for key in ("lr", "meta_info"):
        if spec.get(key):
            inputs[key] = spec[key]
    if spec.get("lr"):
        inputs["lr_files"] = visible_files(spec["lr"])
    return inputs


def folder_crop(spec: dict[str, Any], crop: dict[str, Any]) -> dict[str, int]:
    """Patch size and step of an import: the dataset's own, else the run's crop settings."""
    return {"hr_size": spec.get("hr_size") or crop["hr_size"], "step": spec.get("step") or crop["step"]}
