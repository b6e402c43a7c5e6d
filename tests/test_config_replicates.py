"""Replicates as one setting, the relabelling control's keys and the verdict table's keys."""

from __future__ import annotations

import copy

import pytest
import yaml

from idc.config import ConfigError, replicate_members, validate_config, verdict_methods
from tests.conftest import PROJECT_ROOT


def _demo() -> dict:
    with open(PROJECT_ROOT / "config" / "demo.yaml") as fh:
        return yaml.safe_load(fh)


def _with(datasets: dict, **table) -> dict:
    config = _demo()
    config["datasets"] = datasets
    config["tables"] = {"t": {"datasets": list(table.pop("rows", datasets)), "models": ["edsr"],
                              "testsets": ["DemoTest"], **table}}
    config["targets"] = ["t"]
    config["export"] = {"datasets": []}
    return config


def test_replicates_expand_into_numbered_datasets_with_their_own_seeds():
    config = validate_config(_with({"whole": {"method": "whole"},
                                    "random": {"method": "random", "ratio": 0.1, "replicates": 3}}))
    ds = config["datasets"]
    assert list(ds) == ["whole", "random", "random-s1", "random-s2"]
    assert [ds[k]["replicate"] for k in ("random", "random-s1", "random-s2")] == [0, 1, 2]
    assert all(ds[k]["replicate_of"] == "random" and ds[k]["replicates"] == 1 for k in ("random", "random-s1"))
    assert ds["whole"]["replicate_of"] is None
    assert replicate_members(ds, "random") == ["random", "random-s1", "random-s2"]
    assert replicate_members(ds, "whole") == ["whole"]
    # idempotent: validating the expanded config again changes nothing
    again = validate_config(copy.deepcopy(config))
    assert again["datasets"] == ds


def test_replicates_start_at_the_entrys_replicate_number():
    config = validate_config(_with({"random": {"method": "random", "ratio": 0.1, "replicate": 2, "replicates": 2},
                                    "whole": {"method": "whole"}}))
    assert {k: v["replicate"] for k, v in config["datasets"].items() if k != "whole"} == {"random": 2, "random-s3": 3}


def test_hand_written_replicate_entries_keep_working_and_clashes_are_refused():
    config = validate_config(_with({"random": {"method": "random", "ratio": 0.1},
                                    "random-s1": {"method": "random", "ratio": 0.1, "replicate": 1},
                                    "whole": {"method": "whole"}}))
    assert replicate_members(config["datasets"], "random") == ["random"]
    with pytest.raises(ConfigError, match=r"datasets\.random\.replicates: .*'random-s1'"):
        validate_config(_with({"random": {"method": "random", "ratio": 0.1, "replicates": 2},
                               "random-s1": {"method": "random", "ratio": 0.1, "replicate": 1}},
                              rows=["random"]))


@pytest.mark.parametrize("spec, message", [
    ({"method": "idc", "ratio": 0.1, "upsampler": "mambairv2_up", "hr_source": "teacher"},
     r"datasets\.x\.hr_source: teacher applies to the real-patch methods"),
    ({"method": "random", "ratio": 0.1, "hr_source": "teacher"}, r"datasets\.x\.upsampler: required"),
    ({"method": "random", "ratio": 0.1, "hr_source": "teacher", "upsampler": "nope"},
     r"datasets\.x\.upsampler: 'nope' is not a key of teachers"),
    ({"method": "random", "ratio": 0.1, "upsampler": "mambairv2_up"}, r"datasets\.x\.upsampler: only for"),
    ({"method": "random", "ratio": 0.1, "replicate_of": "random"}, r"datasets\.x\.replicate_of: set by"),
])
def test_relabelling_keys_are_checked(spec, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_with({"x": spec, "random": {"method": "random", "ratio": 0.1}}))


def test_relabelled_dataset_validates():
    config = validate_config(_with({"random": {"method": "random", "ratio": 0.1},
                                    "random_teacher": {"method": "random", "ratio": 0.1, "hr_source": "teacher",
                                                       "upsampler": "mambairv2_up", "replicates": 2}}))
    assert config["datasets"]["random_teacher-s1"]["hr_source"] == "teacher"


def test_verdict_table_finds_its_reference_and_control_and_checks_them():
    datasets = {"whole": {"method": "whole"}, "random": {"method": "random", "ratio": 0.1},
                "herding": {"method": "herding", "ratio": 0.1}}
    config = validate_config(_with(datasets, kind="verdict", contrasts=[["herding", "whole"]]))
    assert verdict_methods("t", config["tables"]["t"], config["datasets"]) == ("random", "whole")
    config = validate_config(_with(datasets, kind="verdict", compare_to="herding", rows=["random", "herding"]))
    assert verdict_methods("t", config["tables"]["t"], config["datasets"]) == ("herding", None)
    for table, message in (
        (dict(kind="verdict", rows=["whole", "herding"]), r"tables\.t\.compare_to: no dataset of method random"),
        (dict(kind="verdict", compare_to="whole", whole="herding", rows=["random", "whole"]),
         r"tables\.t\.whole: 'herding' is not one of the table's datasets"),
        (dict(kind="verdict", contrasts=[["random", "random"]]), r"tables\.t\.contrasts: \[random, random\]"),
        (dict(kind="verdict", contrasts=[["random", "dcsr"]]), r"tables\.t\.contrasts: 'dcsr'"),
        (dict(compare_to="random"), r"tables\.t\.compare_to: only for kind verdict"),
        (dict(rows=["random", "whole", "random"]), r"tables\.t\.datasets: 'random' is listed more than once"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config(_with(copy.deepcopy(datasets), **table))
