"""Every value a job would reject is rejected at validation, and valid YAML is accepted (issue 23,
classes 11 and 15): seeds beyond what the stores take, sizes that would exhaust memory, merge keys."""

from __future__ import annotations

import json

import pytest
import yaml

from idc.config import ConfigError, load_config, validate_config
from tests.conftest import PROJECT_ROOT


def _demo() -> dict:
    # through JSON: YAML aliases (*demo_train) would otherwise share one mapping between networks
    return json.loads(json.dumps(yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())))


@pytest.mark.parametrize("where, value, key", [
    ("seed", 2**70, "config key seed"),
    ("seed", 2**63, "config key seed"),
    ("teachers.swinir.train.batch_size", 10**9, "config key teachers.swinir.train.batch_size"),
    ("condense.upsample_batch", 10**6, "config key condense.upsample_batch"),
    ("condense.params.num_freqs", 10**9, "num_freqs=1000000000 must be at most 16384"),
    ("condense.params.channels", 10**7, "channels=10000000 must be at most 16384"),
])
def test_values_a_job_would_reject_stop_at_validation(where, value, key):
    """`seed: 2**70` once failed inside crop with an HDF5 dtype error; `batch_size` and
    `num_freqs` of 1e9 with a MemoryError or a 128 GB allocation."""
    config = _demo()
    node = config
    *parents, last = where.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_the_largest_accepted_seed_is_one_the_stores_take(tmp_path):
    import numpy as np

    from idc.data.store import PatchStore, write_patch_store

    config = _demo()
    config["seed"] = 2**63 - 1
    validate_config(config)
    path = write_patch_store(tmp_path / "s.h5", np.zeros((1, 2, 2, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8),
                             [0], np.zeros((1, 2), np.int64), seed=config["seed"])
    assert PatchStore(path).attrs["seed"] == 2**63 - 1


def test_yaml_merge_keys_are_accepted_and_real_duplicates_still_refused(tmp_path):
    """`train: {<<: *demo_train}` was once refused as invalid YAML."""
    text = (PROJECT_ROOT / "config" / "demo.yaml").read_text()
    assert text.count("train: *demo_train") >= 1
    merged = tmp_path / "merged.yaml"
    merged.write_text(text.replace("train: *demo_train", "train: {<<: *demo_train, steps: 50}", 1))
    config = load_config(merged)
    reference = load_config(PROJECT_ROOT / "config" / "demo.yaml")
    trained = [(section, name) for section in ("teachers", "models") for name, spec in config[section].items()
               if spec["train"]["steps"] == 50]
    assert trained  # the network given the merge (and any alias of that network)
    for section, name in trained:
        assert {**reference[section][name]["train"], "steps": 50} == config[section][name]["train"]
    twice = tmp_path / "twice.yaml"
    twice.write_text(text.replace("train: *demo_train", "train: {<<: *demo_train, steps: 50, steps: 60}", 1))
    with pytest.raises(ConfigError, match=r"twice.yaml: config key 'steps' is given twice"):
        load_config(twice)


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "mini.yaml", "verdict.yaml", "verdict-pilot.yaml",
                                  "slurm-ci.yaml"])
def test_every_shipped_config_is_within_the_bounds(name):
    config = load_config(PROJECT_ROOT / "config" / name)
    sizes = [spec["train"]["batch_size"] for section in ("teachers", "models") for spec in config[section].values()]
    assert max(sizes) * 16 <= 1024 and config["condense"]["upsample_batch"] * 128 <= 4096
