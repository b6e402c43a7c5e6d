"""Loading one run of the workflow: its configuration checked, and what the workflow reads from
disk while it is parsed, before any job is planned. Every problem is a ValueError whose message
is one line naming the config key (a ConfigError where the check is the workflow's own), which the
workflow prints as its only output."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc.config import check_ratios, read_config_file, validate_config
from idc.sr.distributed import check_training_ranks
from idc.workflow.data import TrainingImages, read_training_images
from idc.workflow.datasets import CondensationRuns, check_folder_datasets
from idc.workflow.paths import RunPaths


@dataclass(frozen=True)
class Run:
    """A checked configuration's paths, training images and condensation runs."""

    paths: RunPaths
    training: TrainingImages
    condensations: CondensationRuns


def load_run(config: dict[str, Any], configfiles: Iterable[str | Path] = ()) -> Run:
    """Check `config` (the files it was read from, `configfiles`, once more strictly: Snakemake's
    own reading keeps a duplicated key's last value), fill its defaults in place, read the
    training images, and check what needs them: each ratio keeps at least one patch (found here,
    not after the crop job ran) and every imported dataset's folders exist."""
    for path in configfiles:
        read_config_file(path)
    validate_config(config)
    check_training_ranks(config)
    paths = RunPaths.of(config)
    training = read_training_images(config, paths)
    check_ratios(config, training.patch_counts)
    check_folder_datasets(config["datasets"])
    return Run(paths, training, CondensationRuns(config, training))
