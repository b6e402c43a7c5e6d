"""Workflow configuration: JSON-Schema validation with defaults, cross-checks, one-line errors.

`load_config` / `validate_config` are used by the Snakefile before any job is planned and by the
tests; every error is a single line naming the offending key.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from idc.names import name_problem
from idc.schema import load_schema
from idc.select.methods import (
    CONDENSATION_METHODS,
    REAL_PATCH_METHODS,
    SELECTION_METHODS,
    SELECTOR_SETTINGS,
    uses_teacher_features,
)


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
    _expand_replicates(config)
    _cross_check(config)
    return config




def replicate_name(key: str, number: int, first: int) -> str:
    """The dataset key of replicate `number` of the entry `key` whose first replicate is `first`:
    the key itself for the first, `<key>-s<number>` for the others (the names the configs gave
    replicates by hand before `replicates` existed, so their results folders are reused)."""
    return key if number == first else f"{key}-s{number}"


def _expand_replicates(config: dict) -> None:
    """`datasets.<key>.replicates: R` -> R entries with consecutive replicate numbers, each marked
    `replicate_of: <key>`, in place and idempotent (an expanded entry has `replicates: 1`)."""
    datasets = config.get("datasets", {})
    expanded: dict = {}
    for key, spec in datasets.items():
        count = spec.get("replicates", 1)
        if count == 1:
            expanded[key] = spec
            continue
        first = spec["replicate"]
        for number in range(first, first + count):
            name = replicate_name(key, number, first)
            if name in datasets and name != key:
                raise ConfigError(f"config key datasets.{key}.replicates: replicate {number} would be named "
                                  f"{name!r}, which is already a key of datasets")
            expanded[name] = {**copy.deepcopy(spec), "replicate": number, "replicates": 1, "replicate_of": key}
    if expanded.keys() != datasets.keys():
        datasets.clear()
        datasets.update(expanded)


def _check_pairs_of(name: str, spec: dict, datasets: dict) -> None:
    """`pairs_of` sizes a selection by another training set: one of the config's datasets, not
    itself, not sized the same way (no chains), and in place of `ratio`."""
    other = spec["pairs_of"]
    if spec["method"] not in SELECTION_METHODS:
        raise ConfigError(f"config key datasets.{name}.pairs_of: applies to the selection methods "
                          f"({', '.join(SELECTION_METHODS)}), not to method {spec['method']!r}")
    if "ratio" in spec:
        raise ConfigError(f"config key datasets.{name}.pairs_of: give ratio or pairs_of, not both")
    if other not in datasets:
        raise ConfigError(f"config key datasets.{name}.pairs_of: {other!r} is not a key of datasets")
    if (datasets[other].get("replicate_of") or other) == (spec.get("replicate_of") or name):
        raise ConfigError(f"config key datasets.{name}.pairs_of: a dataset cannot take its own size")
    if "pairs_of" in datasets[other]:
        raise ConfigError(f"config key datasets.{name}.pairs_of: {other!r} takes its own size from pairs_of; "
                          "name the dataset it is sized by")


def replicate_members(datasets: dict, key: str) -> list[str]:
    """The dataset keys whose results a row `key` of a table stands for: its replicates when the
    entry was expanded from `replicates`, else the key alone."""
    members = [name for name, spec in datasets.items() if spec.get("replicate_of") == key]
    return members or [key]


def _check_names(config: dict) -> None:
    """Every name that becomes a path component, by the one rule of idc.names (the schema's
    `$`-anchored patterns let a trailing newline through)."""
    problem = name_problem(config["run"])
    if problem:
        raise ConfigError(f"config key run: {problem}")
    for section in ("data.testsets", "teachers", "models", "datasets", "tables"):
        node = config
        for part in section.split("."):
            node = node.get(part, {})
        for name in node:
            problem = name_problem(name)
            if problem:
                raise ConfigError(f"config key {section}: key {problem}")


def _check_finite(node: Any, where: str) -> None:
    """NaN and infinity pass every `minimum`/`maximum` of JSON Schema (comparisons with NaN are
    false); no setting of this workflow means either."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"config key {where}: {node!r} is not a finite number")
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, f"{where}[{i}]")


def _check_networks(config: dict) -> None:
    """What the cropping, training and condensation jobs rely on, checked before any of them runs
    (a value found bad inside a job costs the outputs Snakemake removed before starting it)."""
    from idc.archs.registry import check_model_kwargs, default_kwarg

    scale = config["scale"]
    crop = config["data"]["crop"]
    crops = {"data.crop": crop}
    crops.update({f"datasets.{name}": spec for name, spec in config.get("datasets", {}).items()
                  if spec["method"] == "folder"})  # imported folders are cropped by their own sizes
    for where, sizes in crops.items():
        for key in ("hr_size", "step"):
            if sizes.get(key) and sizes[key] % scale:
                raise ConfigError(f"config key {where}.{key}: {sizes[key]} is not a multiple of scale {scale} "
                                  "(LR windows must fall on whole pixels)")
    for section in ("teachers", "models"):
        for name, spec in config.get(section, {}).items():
            where = f"{section}.{name}"
            try:
                _, kwargs = check_model_kwargs(spec["arch"], spec["kwargs"])
            except ValueError as err:
                raise ConfigError(f"config key {where}.kwargs: {err}") from None
            upscale = kwargs.get("upscale", default_kwarg(spec["arch"], "upscale"))
            if upscale != scale:
                raise ConfigError(f"config key {where}.kwargs.upscale: the network up-samples x{upscale}, "
                                  f"the run's scale is {scale}")
            gt_size = spec["train"]["gt_size"]
            if not spec.get("weights"):
                if gt_size % scale:
                    raise ConfigError(f"config key {where}.train.gt_size: {gt_size} is not a multiple of scale {scale}")
                if gt_size > crop["hr_size"]:
                    raise ConfigError(f"config key {where}.train.gt_size: {gt_size} is larger than the HR "
                                      f"patches (data.crop.hr_size {crop['hr_size']})")


def _cross_check(config: dict) -> None:
    """Checks JSON Schema cannot express: names, finiteness, references between sections."""
    _check_names(config)
    _check_finite(config, "")
    _check_networks(config)
    _check_trainset(config["data"]["trainset"])
    datasets = config.get("datasets", {})
    for name, spec in datasets.items():
        for key in spec.get("selection") or {}:
            if key not in SELECTOR_SETTINGS.get(spec["method"], {}):
                raise ConfigError(f"config key datasets.{name}.selection.{key}: not a setting of method "
                                  f"{spec['method']!r}")
    for name, spec in config.get("models", {}).items():
        if spec.get("weights"):
            raise ConfigError(f"config key models.{name}.weights: only teachers can start from released weights "
                              "(the evaluated models are trained on each dataset)")
    _check_teachers_named(config)
    for name, spec in datasets.items():
        _check_dataset(name, spec, datasets, config.get("teachers", {}))
    testsets = config["data"].get("testsets", {})
    validation = config["data"].get("validation")
    if validation is not None and validation not in testsets:
        raise ConfigError(f"config key data.validation: {validation!r} is not a key of data.testsets")
    _check_tables(config)
    for item in config.get("export", {}).get("datasets", []):
        if item not in datasets:
            raise ConfigError(f"config key export.datasets: {item!r} is not a key of datasets")
    for target in config["targets"]:
        if target not in config.get("tables", {}):
            raise ConfigError(f"config key targets: {target!r} is not a key of tables")
    for name, spec in testsets.items():
        if spec["source"] == "folder" and not spec.get("hr"):
            raise ConfigError(f"config key data.testsets.{name}.hr: required for a folder test set")


def _check_trainset(trainset: dict) -> None:
    if trainset["source"] == "folder" and not trainset.get("folder"):
        raise ConfigError("config key data.trainset.folder: required when data.trainset.source is folder")
    if trainset["source"] == "demo" and trainset.get("images") is not None:
        raise ConfigError("config key data.trainset.images: applies to sources folder and div2k, not demo")
    local = trainset.get("div2k_local_dir")
    if trainset["source"] == "div2k" and local and not Path(local).is_dir():
        raise ConfigError(f"config key data.trainset.div2k_local_dir: folder {local} does not exist")


def _check_teachers_named(config: dict) -> None:
    """The teachers the condensation and the feature selections use exist, and every IDC dataset's
    condensation settings resolve (its variant on top of condense.params)."""
    teachers, datasets, condense = config.get("teachers", {}), config.get("datasets", {}), config["condense"]
    needs_condense = any(d["method"] in CONDENSATION_METHODS for d in datasets.values())
    if needs_condense and condense["extractor"] not in teachers:
        raise ConfigError(f"config key condense.extractor: {condense['extractor']!r} is not a key of teachers")
    if any(uses_teacher_features(d["method"], config["baselines"]["feature_source"]) for d in datasets.values()):
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


def _check_dataset(name: str, spec: dict, datasets: dict, teachers: dict) -> None:
    """One dataset's keys against its method: replicates, HR source, up-sampler, size."""
    of = spec.get("replicate_of")
    if of is not None and (of not in datasets or datasets[of].get("replicate_of") != of):
        raise ConfigError(f"config key datasets.{name}.replicate_of: set by the expansion of `replicates`, "
                          "not by hand")
    if spec["hr_source"] == "teacher":
        if spec["method"] not in REAL_PATCH_METHODS:
            raise ConfigError(f"config key datasets.{name}.hr_source: teacher applies to the real-patch methods "
                              f"({', '.join(REAL_PATCH_METHODS)}); method {spec['method']!r} has its own HR side")
        if "upsampler" not in spec:
            raise ConfigError(f"config key datasets.{name}.upsampler: required with hr_source teacher")
        if spec["upsampler"] not in teachers:
            raise ConfigError(f"config key datasets.{name}.upsampler: {spec['upsampler']!r} is not a key of teachers")
    elif "upsampler" in spec and spec["method"] != "idc":
        raise ConfigError(f"config key datasets.{name}.upsampler: only for method idc or hr_source teacher")
    if spec["method"] == "folder" and not spec.get("hr"):
        raise ConfigError(f"config key datasets.{name}.hr: required for method folder")
    if "pairs_of" in spec:
        _check_pairs_of(name, spec, datasets)
    elif (spec["method"] in SELECTION_METHODS or spec["method"] in CONDENSATION_METHODS) and "ratio" not in spec:
        raise ConfigError(f"config key datasets.{name}.ratio: required for method {spec['method']}")
    if spec["method"] == "idc":
        if "upsampler" not in spec:
            raise ConfigError(f"config key datasets.{name}.upsampler: required for method idc")
        if spec["upsampler"] not in teachers:
            raise ConfigError(f"config key datasets.{name}.upsampler: {spec['upsampler']!r} is not a key of teachers")


def _check_tables(config: dict) -> None:
    """Every table names known datasets, models and test sets once each, and uses the keys of
    its kind only."""
    known_by_key = {"datasets": (config.get("datasets", {}), "datasets"),
                    "models": (config.get("models", {}), "models"),
                    "testsets": (config["data"].get("testsets", {}), "data.testsets")}
    for name, table in config.get("tables", {}).items():
        for key, (known, section) in known_by_key.items():
            for item in table[key]:
                if item not in known:
                    raise ConfigError(f"config key tables.{name}.{key}: {item!r} is not a key of {section}")
        repeated = sorted({d for d in table["datasets"] if table["datasets"].count(d) > 1})
        if repeated:
            raise ConfigError(f"config key tables.{name}.datasets: {repeated[0]!r} is listed more than once")
        if table["kind"] == "verdict":
            verdict_methods(name, table, config.get("datasets", {}))
        else:
            for key in ("compare_to", "whole"):
                if table[key] is not None:
                    raise ConfigError(f"config key tables.{name}.{key}: only for kind verdict")
            if table["contrasts"]:
                raise ConfigError(f"config key tables.{name}.contrasts: only for kind verdict")


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last).

    Merge keys (``<<: *anchor``) are valid YAML: the keys they bring in may be overridden by the
    mapping's own keys, so only the mapping's own keys are compared with each other; the merge
    itself is left to SafeLoader."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{node.start_mark.name}: config key {key!r} is given twice in one mapping "
                    f"(lines {seen[key] + 1} and {key_node.start_mark.line + 1}); YAML would keep the last silently"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> dict:
    """One YAML configuration file; a duplicated key is a ConfigError naming the file and key."""
    with open(path) as fh:
        try:
            loaded = yaml.load(fh, Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a configuration file must hold a mapping (got {type(loaded).__name__})")
    return loaded


def check_ratios(config: dict, patch_counts: list[int] | None) -> None:
    """Every dataset's ratio keeps at least one patch of the patches it draws from (the images'
    counts in image order; None when unknown before cropping, then the DIV2K paper count is used
    where it applies)."""
    from idc.counting import n_for_ratio
    from idc.data.crop import DIV2K_TRAIN_PATCHES

    crop = config["data"]["crop"]
    paper_div2k = config["data"]["trainset"]["source"] == "div2k" and (
        crop["hr_size"], crop["step"], crop["thresh"]) == (256, 128, 0)
    for name, spec in config["datasets"].items():
        if "ratio" not in spec:  # whole, folder: no selection from the patches
            continue
        images = spec.get("images")
        if patch_counts is not None:
            n = sum(patch_counts[:images] if images else patch_counts)
        elif paper_div2k and not images:
            n = DIV2K_TRAIN_PATCHES
        else:
            continue
        try:
            n_for_ratio(n, spec["ratio"])
        except ValueError as err:
            raise ConfigError(f"config key datasets.{name}.ratio: {err}") from None


def load_config(*paths: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Read YAML files (later ones update earlier ones, deeply), apply overrides, validate."""
    config: dict = {}
    for path in paths:
        _deep_update(config, read_config_file(path))
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


def verdict_methods(name: str, table: dict, datasets: dict) -> tuple[str, str | None]:
    """(reference, whole) of verdict table `name`: as given, or the table's first dataset with
    method random (reference) and whole; each must be a row of the table."""
    rows = table["datasets"]

    def first(method: str) -> str | None:
        return next((d for d in rows if datasets[d]["method"] == method), None)

    reference = table["compare_to"] or first("random")
    if reference is None:
        raise ConfigError(f"config key tables.{name}.compare_to: no dataset of method random in the table; "
                          "name the reference method")
    whole = table["whole"] or first("whole")
    for key, value in (("compare_to", reference), ("whole", whole)):
        if value is not None and value not in rows:
            raise ConfigError(f"config key tables.{name}.{key}: {value!r} is not one of the table's datasets")
    for a, b in table["contrasts"]:
        for item in (a, b):
            if item not in rows:
                raise ConfigError(f"config key tables.{name}.contrasts: {item!r} is not one of the table's datasets")
        if a == b:
            raise ConfigError(f"config key tables.{name}.contrasts: [{a}, {b}] compares a method with itself")
    return reference, whole
