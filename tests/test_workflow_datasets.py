"""The workflow's dataset products: the export rule (paired PNG folders + card) and datasets of
method folder, imported and then trained, tested and tabled like the workflow's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from idc.condense.config import CondenseConfig, resolve_condense_config
from idc.data.store import PatchStore
from tests.workflow_helpers import copy_workflow, planned_jobs, snakemake


def _demo_with(work: Path, tmp_path: Path, mutate) -> Path:
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    mutate(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_folder_dataset_is_planned_like_any_other(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    hr = tmp_path / "ext" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(hr / "a.png")

    def add_folder(config):
        config["datasets"]["ext"] = {"method": "folder", "hr": str(hr)}
        config["tables"]["table1"]["datasets"].append("ext")
        config["export"] = {"datasets": ["idc", "ext"]}

    proc = snakemake(["-n", "--configfile", str(_demo_with(work, tmp_path, add_folder))], cwd=work)
    jobs = planned_jobs(proc.stdout)
    assert jobs["import_folder"] == 1
    assert jobs["train_sr"] == jobs["test_sr"] == 10 * 3  # the demo's nine datasets (six rows, three with two replicates) and ext, 3 models
    assert jobs["export_dataset"] == 2
    # random's two replicates, herding, kcenter and dcsr; ext is not a selection
    assert "select_baseline" in jobs and jobs["select_baseline"] == 5


def test_a_missing_folder_stops_before_planning_with_one_line(tmp_path):
    work = copy_workflow(tmp_path / "wf")

    def add_missing(config):
        config["datasets"]["ext"] = {"method": "folder", "hr": str(tmp_path / "nowhere")}

    proc = snakemake(["-n", "--configfile", str(_demo_with(work, tmp_path, add_missing))], cwd=work, check=False)
    assert proc.returncode != 0
    assert f"error: config key datasets.ext.hr: folder {tmp_path / 'nowhere'} does not exist" in proc.stderr


@pytest.mark.slow
def test_demo_exports_its_condensed_set_with_a_card(demo_run):
    out = demo_run / "results/demo/export/idc"
    card = yaml.safe_load((out / "dataset_card.yaml").read_text())
    with PatchStore(demo_run / "results/demo/datasets/idc.h5") as store:
        n = len(store)
        lr_ref, hr_ref = store.read(np.arange(n))
    assert card["method"] == "idc" and card["pairs"] == n and card["ratio"] == 0.1
    assert card["memorisation"]["n"] == n and card["seeds"]["master"] == 0
    demo = yaml.safe_load((demo_run / "config" / "demo.yaml").read_text())
    assert card["config"]["condense"]["steps"] == demo["condense"]["params"]["steps"]  # the resolved slice
    assert card["config"]["condense"]["init"] == "real" and card["config"]["upsampler"]["arch"] == "mambairv2_light"
    names = [line.split(" ")[0] for line in (out / "meta_info.txt").read_text().splitlines()]
    assert len(names) == n and names == sorted(names)
    assert np.array_equal(np.asarray(Image.open(out / "HR" / names[-1])), hr_ref[-1])
    assert np.array_equal(np.asarray(Image.open(out / "LR_bicubic/X4" / names[-1].replace(".png", "x4.png"))), lr_ref[-1])
    assert (demo_run / "results/demo/logs/export_dataset/idc.log").read_text().count("eta") >= 1


@pytest.mark.slow
def test_an_exported_selection_imported_back_is_trained_tested_and_tabled(demo_run, tmp_path):
    """The random selection exported, then evaluated as an external set: the import holds exactly
    the selected pairs, and the table gets its rows beside the workflow's own datasets."""
    work = tmp_path / "wf"
    shutil.copytree(demo_run, work, symlinks=True)
    snakemake(["--cores", "2", "results/demo/export/random"], cwd=work)
    exported = work / "results/demo/export/random"

    def add_external(config):
        config["datasets"]["random_ext"] = {
            "method": "folder", "hr": str(exported / "HR"), "lr": str(exported / "LR_bicubic/X4"),
            "meta_info": str(exported / "meta_info.txt"),
        }
        config["models"] = {"edsr": config["models"]["edsr"]}
        config["tables"]["table1"].update(models=["edsr"], datasets=["random", "random_ext"])

    configfile = _demo_with(work, tmp_path, add_external)
    proc = snakemake(["--cores", "2", "--configfile", str(configfile)], cwd=work)
    assert "import_folder" in proc.stderr + proc.stdout
    with PatchStore(work / "results/demo/data/train_patches.h5") as whole:
        ref = whole.read(np.load(work / "results/demo/datasets/random.idx.npy"))
    with PatchStore(work / "results/demo/datasets/random_ext.h5") as imported:
        got = imported.read(np.arange(len(imported)))
    assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    table = pd.read_csv(work / "results/demo/tables/table1.csv")
    row = table[(table["method"] == "random_ext") & (table["model"] == "edsr")]
    assert len(row) == 1 and 5 < row["psnr"].iloc[0] < 60
    assert "random_ext" in (work / "results/demo/tables/table1.md").read_text()


def test_the_first_k_training_images_make_the_training_set(tmp_path):
    """`data.trainset.images: K` keeps the first K photos of a folder in name order: K
    condensation jobs per IDC dataset, and the crop job stores just those K (checked on the
    store it writes)."""
    work = copy_workflow(tmp_path / "wf")
    hr = tmp_path / "photos"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for name in ("e", "a", "d", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(hr / f"{name}.png")

    def first_three(config):
        config["data"]["trainset"] = {"source": "folder", "folder": str(hr), "images": 3}

    configfile = str(_demo_with(work, tmp_path, first_three))
    jobs = planned_jobs(snakemake(["-n", "--configfile", configfile], cwd=work).stdout)
    snakemake(["results/demo/data/train_patches.h5", "--cores", "1", "--configfile", configfile], cwd=work)
    with PatchStore(work / "results" / "demo" / "data" / "train_patches.h5") as store:
        assert list(store.image_names) == ["a.png", "b.png", "c.png"]
        counts = np.bincount(np.asarray(store.image_id), minlength=3)
    # The plan, made before cropping, must give a job to exactly the kept images whose share of
    # the budget, computed from the store the crop job wrote, is not 0; the demo's IDC dataset
    # has two replicates, each condensing the same images.
    config = yaml.safe_load(Path(configfile).read_text())
    idc = config["datasets"]["idc"]
    resolved = resolve_condense_config(config["condense"]["params"], variant=idc["variant"], ratio=idc["ratio"])
    shares = np.asarray(CondenseConfig.from_dict(resolved).synthetic_counts(counts))
    assert 0 < int((shares > 0).sum()) <= 3
    assert jobs["condense_image"] == idc["replicates"] * int((shares > 0).sum())


def _evaluate_folder_overlay(tmp_path: Path, exported: Path, *, replicates: int) -> Path:
    """config/evaluate-folder.yaml's own datasets pointed at an exported demo set, on the demo's
    test set, with `replicates` replicates."""
    overlay = {
        "datasets": {
            "yours": {"hr": str(exported / "HR"), "lr": str(exported / "LR_bicubic/X4"),
                      "meta_info": str(exported / "meta_info.txt"), "replicates": replicates},
            "random-yours": {"replicates": replicates},
            "whole": {"replicates": replicates},
        },
        "tables": {"evaluation": {"testsets": ["DemoTest"]}},
    }
    path = tmp_path / "evaluate-demo.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def test_evaluate_folder_shares_one_import_and_sizes_random_by_it(tmp_path):
    """Replicates of a folder dataset train on one import; Random at its pair count waits for
    that import (it is counted there)."""
    work = copy_workflow(tmp_path / "wf")
    exported = tmp_path / "set"
    (exported / "HR").mkdir(parents=True)
    (exported / "LR_bicubic/X4").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(exported / "HR" / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(exported / "LR_bicubic/X4" / "ax4.png")
    (exported / "meta_info.txt").write_text("a.png (32,32,3)\n")
    configs = ["config/demo.yaml", "config/evaluate-folder.yaml", str(_evaluate_folder_overlay(tmp_path, exported,
                                                                                              replicates=3))]
    proc = snakemake(["-n", "--configfile", *configs], cwd=work)
    jobs = planned_jobs(proc.stdout)
    assert jobs["import_folder"] == 1
    assert jobs["select_baseline"] == 3  # random-yours' three replicates, nothing else of the demo
    assert jobs["train_sr"] == 9 and jobs["make_verdict"] == 1
    assert "results/demo/datasets/yours.h5" in proc.stdout and "yours-s1.h5" not in proc.stdout


@pytest.mark.slow
def test_evaluate_folder_on_an_exported_demo_set(demo_run, tmp_path):
    """config/evaluate-folder.yaml on the demo's exported IDC set: Random takes exactly as many
    pairs as the set holds, and the verdict table gives IOR and HLR with intervals."""
    work = tmp_path / "wf"
    shutil.copytree(demo_run, work, symlinks=True)
    exported = work / "results/demo/export/idc"
    configs = ["config/demo.yaml", "config/evaluate-folder.yaml", str(_evaluate_folder_overlay(tmp_path, exported,
                                                                                              replicates=2))]
    snakemake(["--cores", "2", "--configfile", *configs], cwd=work)
    with PatchStore(work / "results/demo/datasets/yours.h5") as store:
        n_pairs = len(store)
    for name in ("random-yours", "random-yours-s1"):
        assert np.load(work / f"results/demo/datasets/{name}.idx.npy").size == n_pairs
    frame = pd.read_csv(work / "results/demo/tables/evaluation.csv")
    own = frame[(frame["method"] == "yours") & (frame["versus"].isna()) & (frame["testset"] == "all")
                & (frame["metric"] == "psnr")].iloc[0]
    assert own["ior_low"] <= own["ior"] <= own["ior_high"] and own["hlr_low"] <= own["hlr"] <= own["hlr_high"]
    text = (work / "results/demo/tables/evaluation.md").read_text()
    assert "### Improvement over Random (same pair count) and gap to Whole (edsr)" in text
    assert "| Your set | All |" in text
