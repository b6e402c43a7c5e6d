"""The provenance record every stage writes into its JSON record or log, under `PROVENANCE_KEY`.

One record, the same keys from every stage (`RECORD_KEYS`):

    software    the versions of `SOFTWARE`, always all of its keys; None for a library that is not
                installed, and for "cuda" where torch is not loaded or is a build without CUDA
    git_commit  HEAD of the git checkout that holds the running `idc` package, "unknown" when the
                package is not part of a checkout (an installed copy) or git cannot tell
    seeds       the stage's seeds by name, None where it has none
    config      the slice of the configuration the stage ran with, None where it has none

It is written beside the stage's outputs, never into a Snakemake rule's params: params decide
reruns, and a new commit or library version must not rerun finished jobs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROVENANCE_KEY = "provenance"
RECORD_KEYS = ("software", "git_commit", "seeds", "config")

# Record key -> (distribution, import name) of the libraries the stages use. A library a stage did
# not import is read from its installed metadata, so recording it costs no import (torch's takes
# seconds); one that was imported reports the version of the module that actually ran.
_LIBRARIES = {
    "numpy": ("numpy", "numpy"),
    "torch": ("torch", "torch"),
    "scikit-learn": ("scikit-learn", "sklearn"),
    "h5py": ("h5py", "h5py"),
    "pillow": ("pillow", "PIL"),
}
SOFTWARE = ("idc", "python", *_LIBRARIES, "cuda")

_GIT_TIMEOUT_S = 10


def _library_version(distribution: str, module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    version = getattr(module, "__version__", None)
    if version is not None:
        return str(version)
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """Version of each of `SOFTWARE`, all keys always present."""
    import idc

    versions: dict[str, str | None] = {"idc": idc.__version__, "python": platform.python_version()}
    for key, (distribution, module_name) in _LIBRARIES.items():
        versions[key] = _library_version(distribution, module_name)
    torch = sys.modules.get("torch")
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    versions["cuda"] = None if cuda is None else str(cuda)
    return versions


@functools.cache
def git_commit() -> str:
    """HEAD of the git checkout holding the `idc` package, or "unknown"; asked of git once per
    process. The package's own `__init__.py` must be in that commit: an installed copy inside
    some other repository (a virtual environment in a project folder) is not that repository's
    code."""
    import idc

    package = Path(idc.__file__).resolve().parent
    # A GIT_DIR or GIT_WORK_TREE of the calling environment (a git hook) would point git elsewhere.
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    try:
        done = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD", "HEAD:./__init__.py"],
                              capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = done.stdout.split()
    if done.returncode != 0 or not lines or not re.fullmatch(r"[0-9a-f]{40,64}", lines[0]):
        return "unknown"
    return lines[0]


def _plain(value: Any) -> Any:
    """`value` as JSON/YAML hold it: mappings with text keys, lists, numbers, text, None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    return str(value)


def provenance(*, seeds: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record a stage writes under `PROVENANCE_KEY`: keys `RECORD_KEYS`, in that order."""
    return {
        "software": software_versions(),
        "git_commit": git_commit(),
        "seeds": None if seeds is None else _plain(seeds),
        "config": None if config is None else _plain(config),
    }
