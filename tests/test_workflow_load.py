"""Loading a workflow run (idc.workflow.run, .data, .datasets): the config checked, the training
images read while the workflow is parsed, and every problem one line naming the config key."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from PIL import Image

from idc.config import ConfigError
from idc.data.crop import image_patch_counts
from idc.data.demo import DEMO_TRAIN
from idc.workflow import data
from idc.workflow.data import checked_folder, div2k_folders, read_training_images, train_lr_dir
from idc.workflow.paths import RunPaths
from idc.workflow.run import load_run
from tests.conftest import PROJECT_ROOT

DEMO = yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())


def _demo(**sections) -> dict:
    """The demo config (unvalidated) with whole top-level sections replaced."""
    config = copy.deepcopy(DEMO)
    config.update(copy.deepcopy(sections))
    return config


def _photos(folder, names, size=(96, 128)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _trainset(**trainset) -> dict:
    settings = copy.deepcopy(DEMO["data"])
    settings["trainset"] = trainset
    return settings


def _error(config, configfiles=()) -> str:
    with pytest.raises(ConfigError) as err:
        load_run(config, configfiles)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_demo_run_is_checked_in_place_and_knows_its_images_by_name():
    config = _demo()
    run = load_run(config)
    assert config["datasets"]["idc"]["images"] is None  # defaults filled in the caller's dict
    assert "idc-s1" in config["datasets"]  # replicates expanded
    assert run.paths == RunPaths("results/demo")
    assert run.training.stems == sorted(DEMO_TRAIN)
    assert run.training.index == {stem: i for i, stem in enumerate(sorted(DEMO_TRAIN))}
    assert run.training.hr_dir == "results/demo/data/demo/train/HR"
    assert run.training.lr_dir is None
    assert run.training.patch_counts is None  # only the crop job can tell


def test_a_folder_gives_its_first_images_in_name_order_with_their_patch_counts(tmp_path):
    folder = _photos(tmp_path / "photos", ["e.png", "a.png", "d.png", "b.png", ".hidden.png"])
    config = _demo(data=_trainset(source="folder", folder=str(folder) + "/", images=3))
    training = load_run(config).training
    assert training.hr_dir == str(folder)  # the folder as a path: no trailing separator
    assert training.stems == ["a", "b", "d"]
    crop = config["data"]["crop"]
    expected = image_patch_counts([folder / f"{s}.png" for s in "abd"], scale=4, hr_size=crop["hr_size"],
                                  step=crop["step"], thresh=crop["thresh"])
    assert training.patch_counts == expected and all(n > 0 for n in expected)


def test_a_local_div2k_copy_is_named_like_the_download_and_counted_from_its_files(tmp_path):
    folder = _photos(tmp_path / "DIV2K_train_HR", [f"{i:04d}.png" for i in range(1, 4)])
    config = _demo(data=_trainset(source="div2k", div2k_local_dir=str(folder), images=2))
    training = load_run(config).training
    assert training.stems == ["0001", "0002"]
    assert training.hr_dir == str(folder) and training.lr_dir is None
    assert len(training.patch_counts) == 2


def test_the_div2k_download_has_no_counts_before_cropping_and_its_official_lr():
    config = _demo(data=_trainset(source="div2k"))
    run = load_run(config)
    assert run.training.stems[0] == "0001" and len(run.training.stems) == 800
    assert run.training.patch_counts is None
    assert run.training.lr_dir == "results/demo/data/DIV2K_train_LR_bicubic/X4"
    assert div2k_folders(config, run.paths) == {"hr": "results/demo/data/DIV2K_train_HR",
                                                "lr": "results/demo/data/DIV2K_train_LR_bicubic/X4"}
    config["data"]["trainset"]["div2k_official_lr"] = False
    assert train_lr_dir(config, run.paths) is None
    assert div2k_folders(config, run.paths) == {"hr": "results/demo/data/DIV2K_train_HR"}


def test_a_missing_training_folder_names_its_key(tmp_path):
    config = _demo(data=_trainset(source="folder", folder=str(tmp_path / "nowhere")))
    assert _error(config) == f"config key data.trainset.folder: folder {tmp_path / 'nowhere'} does not exist"


def test_a_training_image_name_that_cannot_be_a_path_component_names_the_file(tmp_path):
    folder = _photos(tmp_path / "photos", ["a b.png"])
    message = _error(_demo(data=_trainset(source="folder", folder=str(folder))))
    assert message.startswith("config key data.trainset.folder: training image ") and "a b.png" in message


def test_an_unreadable_training_image_names_the_key_of_its_folder(tmp_path):
    folder = _photos(tmp_path / "photos", ["a.png"])
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    message = _error(_demo(data=_trainset(source="folder", folder=str(folder))))
    assert message.startswith("config key data.trainset.folder: ") and "b.png" in message
    local = _photos(tmp_path / "DIV2K", ["0001.png"])
    (local / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    message = _error(_demo(data=_trainset(source="div2k", div2k_local_dir=str(local))))
    assert message.startswith("config key data.trainset.div2k_local_dir: ") and "0002.png" in message


def test_a_ratio_that_keeps_no_patch_is_found_before_cropping(tmp_path):
    folder = _photos(tmp_path / "photos", ["a.png"])
    datasets = copy.deepcopy(DEMO["datasets"])
    datasets["random"]["ratio"] = 0.001
    message = _error(_demo(data=_trainset(source="folder", folder=str(folder)), datasets=datasets))
    assert message.startswith("config key datasets.random.ratio: ")


@pytest.mark.parametrize("key", ["hr", "lr", "meta_info"])
def test_a_missing_folder_or_file_of_an_imported_dataset_names_its_key(tmp_path, key):
    hr, lr = _photos(tmp_path / "HR", ["a.png"]), _photos(tmp_path / "LR", ["a.png"])
    meta = tmp_path / "meta_info.txt"
    meta.write_text("a.png (96,128,3)\n")
    spec = {"method": "folder", "hr": str(hr), "lr": str(lr), "meta_info": str(meta)}
    spec[key] = str(tmp_path / "nowhere")
    datasets = {**copy.deepcopy(DEMO["datasets"]), "ext": spec}
    what = "file" if key == "meta_info" else "folder"
    assert _error(_demo(datasets=datasets)) == (
        f"config key datasets.ext.{key}: {what} {tmp_path / 'nowhere'} does not exist")


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("run: a\nrun: b\n")
    message = _error(_demo(), [path])
    assert str(path) in message and "run" in message


def test_checked_folder_returns_the_folder_or_names_the_key(tmp_path):
    assert checked_folder("k", str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError, match=r"^config key some.key: folder .*nowhere does not exist$"):
        checked_folder("some.key", tmp_path / "nowhere")


def test_test_sets_come_from_the_benchmark_root_and_lr_only_where_it_exists(tmp_path):
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "Set5" / "LR_bicubic" / "X4").mkdir(parents=True)
    (tmp_path / "Set14" / "HR").mkdir(parents=True)
    settings = copy.deepcopy(DEMO["data"])
    settings["benchmark_root"] = str(tmp_path)
    settings["testsets"] = {**settings["testsets"], "Set5": {"source": "folder", "hr": "Set5/HR", "lr": "Set5/LR_bicubic/X4"},
                        "Set14": {"source": "folder", "hr": "Set14/HR", "lr": "Set14/LR_bicubic/X4"},
                        "Abs": {"source": "folder", "hr": str(tmp_path / "Set5" / "HR"), "lr": None}}
    tables = copy.deepcopy(DEMO["tables"])
    tables["table1"]["testsets"] = ["Set14", "DemoTest", "Set5"]
    config = _demo(data=settings, tables=tables)
    run = load_run(config)
    assert data.testset_sources(config, run.paths, "Set5") == {"hr": str(tmp_path / "Set5/HR"),
                                                          "lr": str(tmp_path / "Set5/LR_bicubic/X4")}
    assert data.testset_sources(config, run.paths, "Set14") == {"hr": str(tmp_path / "Set14/HR"), "lr": None}
    assert data.testset_sources(config, run.paths, "Abs") == {"hr": str(tmp_path / "Set5/HR"), "lr": None}
    assert data.testset_sources(config, run.paths, "DemoTest") == {"hr": "results/demo/data/demo/test/HR", "lr": None}
    # table1's, then the verdict's, then the validation set, each once
    assert data.testsets_in_use(config) == ["Set14", "DemoTest", "Set5"]


def test_read_training_images_needs_no_checks_beyond_the_folder():
    config = _demo()
    load_run(config)
    training = read_training_images(config, RunPaths("results/x"))
    assert training.hr_dir == "results/x/data/demo/train/HR"
