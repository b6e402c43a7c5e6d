"""The provenance record: the same keys from every stage that writes one, the same versions in
each, and the code's commit (asked of git once, "unknown" outside a checkout)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from idc import provenance as provenance_module
from idc.provenance import PROVENANCE_KEY, RECORD_KEYS, SOFTWARE, git_commit, provenance, software_versions
from tests.conftest import PROJECT_ROOT


def test_record_keys_and_values_are_fixed() -> None:
    record = provenance(seeds={"seed": np.int64(3)}, config={"sizes": (1, 2), "path": Path("a/b")})
    assert tuple(record) == RECORD_KEYS
    assert tuple(record["software"]) == SOFTWARE
    assert record["software"]["numpy"] == np.__version__
    # plain values only: JSON and YAML write them as they are
    assert record["seeds"] == {"seed": 3} and record["config"] == {"sizes": [1, 2], "path": "a/b"}
    assert json.loads(json.dumps(record)) == record == yaml.safe_load(yaml.safe_dump(record))
    assert provenance()["seeds"] is None and provenance()["config"] is None


def test_a_library_that_is_not_installed_is_none(monkeypatch) -> None:
    monkeypatch.setitem(provenance_module._LIBRARIES, "h5py", ("no-such-distribution", "no_such_module"))
    assert software_versions()["h5py"] is None


def test_git_commit_is_head_of_the_package_checkout() -> None:
    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the project is not a git checkout here")
    assert git_commit() == head.stdout.strip()


def test_git_commit_outside_a_checkout_is_unknown(tmp_path, monkeypatch) -> None:
    import idc

    # An installed copy of the package, inside a repository that does not track it.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    (tmp_path / "site" / "idc").mkdir(parents=True)
    (tmp_path / "site" / "idc" / "__init__.py").write_text("")
    monkeypatch.setattr(idc, "__file__", str(tmp_path / "site" / "idc" / "__init__.py"))
    git_commit.cache_clear()
    try:
        assert git_commit() == "unknown"
        monkeypatch.setattr(provenance_module.subprocess, "run", _no_git)
        git_commit.cache_clear()
        assert git_commit() == "unknown"
    finally:
        git_commit.cache_clear()


def _no_git(*args, **kwargs):
    raise FileNotFoundError("git")


# ---------------------------------------------------------------- every stage, one record
def _selection(tmp_path: Path) -> dict:
    from idc.data.store import write_patch_store
    from idc.select import select_baseline

    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    store = write_patch_store(tmp_path / "s.h5", lr, np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2),
                              np.arange(8) // 2, np.zeros((8, 2), np.int64), scale=4, source="test")
    out = select_baseline(store_path=store, method="random", ratio=0.25, out_path=tmp_path / "sel.npy", seed=7,
                          n_splits=2, feature_source="pixels", device="cpu")
    return json.loads(out.with_suffix(".json").read_text())[PROVENANCE_KEY]


def _training(tmp_path: Path) -> dict:
    from tests.test_sr_train import _settings, _train, write_train_data

    data = write_train_data(tmp_path / "data", n=8, seed=0)
    out = _train(_settings(data, tmp_path / "run", steps=2, val_hr_dir=None, val_lr_dir=None))
    return json.loads((out / "train_log.json").read_text())[PROVENANCE_KEY]


def _condensation(tmp_path: Path) -> dict:
    from idc.condense.condenser import condense_instance
    from tests.doubles import TinyExtractor
    from tests.test_condense_condenser import real_patches, tiny_cfg

    _, log = condense_instance(real_patches(), TinyExtractor(channels=4), tiny_cfg(), seed=5,
                               progress=False)
    return json.loads(json.dumps(log[PROVENANCE_KEY]))


def _export(tmp_path: Path) -> dict:
    from idc.data.paired import CARD_NAME, export_paired
    from tests.test_data_paired import SCALE, _store

    out = export_paired(tmp_path / "exp", _store(tmp_path / "s.h5"), scale=SCALE,
                        card={"config": {"steps": 3}, "seeds": {"master": 1}})
    return yaml.safe_load((out / CARD_NAME).read_text())[PROVENANCE_KEY]


def test_every_stage_writes_the_same_record(tmp_path) -> None:
    records = {name: make(tmp_path / name) for name, make in
               [("select", _selection), ("train", _training), ("condense", _condensation), ("export", _export)]}
    for name, record in records.items():
        assert tuple(record) == RECORD_KEYS, name
        assert tuple(record["software"]) == SOFTWARE, name
        assert record["git_commit"] == git_commit(), name
    # one process: the same versions in every record, whatever each stage imported
    assert len({json.dumps(r["software"]) for r in records.values()}) == 1
    assert records["select"]["seeds"] == {"seed": 7} and records["train"]["seeds"] == {"seed": 7}
    assert records["condense"]["seeds"] == {"instance_seed": 5} and records["export"]["seeds"] == {"master": 1}
    assert records["select"]["config"]["method"] == "random" and records["train"]["config"]["steps"] == 2
    assert records["condense"]["config"]["steps"] == 24 and records["export"]["config"] == {"steps": 3}
