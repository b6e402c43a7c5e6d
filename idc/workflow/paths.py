"""Where the files of one workflow run lie: everything under ``results/<run>``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunPaths:
    """The paths of a run's outputs, relative to the workflow's working directory."""

    results: str  # results/<run>

    @classmethod
    def of(cls, config: dict[str, Any]) -> RunPaths:
        return cls(f"results/{config['run']}")

    @property
    def resume(self) -> str:
        """Checkpoints of interrupted jobs; never a declared output."""
        return f"{self.results}/resume"

    @property
    def store(self) -> str:
        """The patch store of the whole training set."""
        return f"{self.results}/data/train_patches.h5"

    def teacher(self, name: str) -> str:
        return f"{self.results}/teachers/{name}/model.safetensors"

    def testset(self, name: str) -> str:
        """Prepared test set: <dir>/HR (mod-cropped) and <dir>/LR_bicubic/X<scale>."""
        return f"{self.results}/data/testsets/{name}"

    def dataset(self, name: str) -> str:
        """The patch store a dataset made of its own (condensed, relabelled, imported)."""
        return f"{self.results}/datasets/{name}.h5"

    def indices(self, name: str) -> str:
        """A selection's indices into the whole patch store."""
        return f"{self.results}/datasets/{name}.idx.npy"

    def sr(self, dataset: str, model: str) -> str:
        """Folder of one evaluated SR network trained on one dataset."""
        return f"{self.results}/sr/{dataset}/{model}"

    def export(self, dataset: str) -> str:
        return f"{self.results}/export/{dataset}"

    def condensed(self, ckey: str, image: str, suffix: str) -> str:
        """An output of one image's condensation (suffix: .npy, .json, .snapshots.npz)."""
        return f"{self.results}/condense/{ckey}/{image}{suffix}"

    def condense_pack(self, ckey: str, number: int | str) -> str:
        """Folder of one packed condensation job (`condense.pack` > 1): the files of each of its
        images, named as `condensed` names them, before they are copied there."""
        return f"{self.results}/condense/{ckey}/packs/{number}"


def alternatives(names: Iterable[object]) -> str:
    """A wildcard constraint that matches exactly one of `names` (the longest first, so that a name
    which begins another never matches only part of it); with no names, a placeholder no path holds."""
    return "|".join(re.escape(str(n)) for n in sorted(names, key=lambda n: -len(str(n)))) or "__none__"
