"""Workflow configuration: JSON-Schema validation with defaults, cross-checks, one-line errors.

`load_config` / `validate_config` are used by the Snakefile before any job is planned and by the
tests; every error is a single line naming the offending key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem; the message is one line naming the key."""


def _extend_with_defaults(validator_class):
    """A validator that fills `default` values of properties before validating them."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_defaults(Draft202012Validator)


def _key_path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _one_line(error) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = _key_path(error)
        names = ", ".join(f"{where}.{k}" if where != "<top level>" else k for k in extra)
        return f"unknown config key {names} (check the spelling; see config/README.md)"
    if error.validator == "required":
        return f"config key {_key_path(error)}: {error.message}"
    return f"config key {_key_path(error)}: {error.message}"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate `config` in place (filling defaults) and return it; raise ConfigError on the first
    problem, deepest first so the message names the most specific key."""
    schema = schema or load_schema()
    # Defaults inside `$ref`-ed definitions are filled because the validator resolves the
    # reference and then runs the extended `properties` keyword on the sub-instance.
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), str(e.path)))
    if errors:
        raise ConfigError(_one_line(errors[0]))
    _cross_check(config)
    return config


def _cross_check(config: dict) -> None:
    """Checks JSON Schema cannot express: references between sections."""
    teachers = config.get("teachers", {})
    models = config.get("models", {})
    datasets = config.get("datasets", {})
    testsets = config["data"].get("testsets", {})
    trainset = config["data"]["trainset"]
    if trainset["source"] == "folder" and not trainset.get("folder"):
        raise ConfigError("config key data.trainset.folder: required when data.trainset.source is folder")
    for name, spec in datasets.items():
        for key in spec.get("selection") or {}:
            if not key.startswith(spec["method"] + "_"):
                raise ConfigError(f"config key datasets.{name}.selection.{key}: not a setting of method "
                                  f"{spec['method']!r}")
    for name, spec in models.items():
        if spec.get("weights"):
            raise ConfigError(f"config key models.{name}.weights: only teachers can start from released weights "
                              "(the evaluated models are trained on each dataset)")
    condense = config["condense"]
    needs_condense = any(d["method"] == "idc" for d in datasets.values())
    if needs_condense and condense["extractor"] not in teachers:
        raise ConfigError(f"config key condense.extractor: {condense['extractor']!r} is not a key of teachers")
    if config["baselines"]["feature_source"] == "teacher" and any(
        d["method"] in ("herding", "kcenter") for d in datasets.values()
    ):
        if config["baselines"]["feature_teacher"] not in teachers:
            raise ConfigError(
                f"config key baselines.feature_teacher: {config['baselines']['feature_teacher']!r} is not a key of teachers"
            )
    if needs_condense:
        from idc.condense.config import resolve_condense_config

        for name, spec in datasets.items():
            if spec["method"] == "idc":
                try:
                    resolve_condense_config(condense["params"], variant=spec["variant"], ratio=spec.get("ratio", 0.1))
                except (TypeError, ValueError) as err:
                    key = f"datasets.{name}.variant" if "variant" in str(err) else "condense.params"
                    raise ConfigError(f"config key {key}: {err}") from None
    for name, spec in datasets.items():
        if spec["method"] == "folder" and not spec.get("hr"):
            raise ConfigError(f"config key datasets.{name}.hr: required for method folder")
        if spec["method"] not in ("whole", "folder") and "ratio" not in spec:
            raise ConfigError(f"config key datasets.{name}.ratio: required for method {spec['method']}")
        if spec["method"] == "idc":
            if "upsampler" not in spec:
                raise ConfigError(f"config key datasets.{name}.upsampler: required for method idc")
            if spec["upsampler"] not in teachers:
                raise ConfigError(f"config key datasets.{name}.upsampler: {spec['upsampler']!r} is not a key of teachers")
    validation = config["data"].get("validation")
    if validation is not None and validation not in testsets:
        raise ConfigError(f"config key data.validation: {validation!r} is not a key of data.testsets")
    tables = config.get("tables", {})
    for name, table in tables.items():
        for key, known, section in (
            ("datasets", datasets, "datasets"),
            ("models", models, "models"),
            ("testsets", testsets, "data.testsets"),
        ):
            for item in table[key]:
                if item not in known:
                    raise ConfigError(f"config key tables.{name}.{key}: {item!r} is not a key of {section}")
    for item in config.get("export", {}).get("datasets", []):
        if item not in datasets:
            raise ConfigError(f"config key export.datasets: {item!r} is not a key of datasets")
    for target in config["targets"]:
        if target not in tables:
            raise ConfigError(f"config key targets: {target!r} is not a key of tables")
    for name, spec in testsets.items():
        if spec["source"] == "folder" and not spec.get("hr"):
            raise ConfigError(f"config key data.testsets.{name}.hr: required for a folder test set")


def load_config(*paths: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Read YAML files (later ones update earlier ones, deeply), apply overrides, validate."""
    config: dict = {}
    for path in paths:
        with open(path) as fh:
            _deep_update(config, yaml.safe_load(fh) or {})
    if overrides:
        _deep_update(config, overrides)
    return validate_config(config)


def _deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base
