"""The configuration schema (idc/schemas/config.schema.yaml) and the defaults written in it.

Kept apart from `idc.config` (validation and cross-checks, which reach into the stages) so that a
stage can read the schema's defaults without importing the workflow configuration.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# Package data (pyproject.toml), so an installed package validates a config; the Snakefile
# validates through `idc.config`, which reads it here, so the workflow reads the same file.
SCHEMA_RESOURCE = resources.files("idc") / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict:
    """The configuration schema (a fresh copy): the package's own, or the file at `path`."""
    text = SCHEMA_RESOURCE.read_text() if path is None else Path(path).read_text()
    return yaml.safe_load(text)


def schema_defaults(*where: str) -> dict[str, Any]:
    """The `default` of each property of the schema node at `where` (e.g. "$defs",
    "train_settings"): the one place those defaults are written, also for Python use of the
    dataclasses built from a validated config."""
    node = load_schema()
    for key in where:
        node = node[key]
    return {name: spec["default"] for name, spec in node["properties"].items() if "default" in spec}
