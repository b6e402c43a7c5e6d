"""What the workflow's rules read from a loaded run (idc.workflow): paths, dataset lists,
condensation runs, the config slices that become params, requests, tables and the export card."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from idc.condense.config import EXECUTION_KEYS, CondenseConfig, resolve_condense_config, split_execution_settings
from idc.runloop import derive_seed
from idc.workflow.data import TrainingImages
from idc.workflow.datasets import (
    CONDENSE_KEY,
    CondensationRuns,
    condensation_datasets,
    condense_key,
    dataset_store,
    folder_crop,
    folder_imports,
    folder_inputs,
    parse_condense_key,
    relabel_inputs,
    relabelled_datasets,
    selection_datasets,
    selection_inputs,
    visible_files,
)
from idc.workflow.export import export_card, export_inputs
from idc.workflow.paths import RunPaths, alternatives
from idc.workflow.requests import capped_cpus, capped_mem, job_resources, packed_resources
from idc.workflow.run import load_run
from idc.workflow.slices import (
    canonical,
    crop_settings,
    network_build,
    network_spec,
    selection_params,
    validation_settings,
)
from idc.workflow.tables import (
    all_targets,
    figure_inputs,
    figure_pairs,
    paper_table_spec,
    paper_tables,
    table_entries,
    table_metrics,
    table_outputs,
    verdict_spec,
    verdict_tables,
)
from tests.conftest import PROJECT_ROOT

PATHS = RunPaths("results/demo")


def _config(name="demo.yaml", mutate=None) -> dict:
    config = yaml.safe_load((PROJECT_ROOT / "config" / name).read_text())
    if mutate:
        mutate(config)
    return config


@pytest.fixture
def demo():
    """A loaded demo run: (config, run)."""
    config = _config()
    return config, load_run(config)


def test_run_paths_lie_under_the_runs_results_folder():
    assert RunPaths.of({"run": "r1"}) == RunPaths("results/r1")
    p = RunPaths("results/r1")
    assert p.resume == "results/r1/resume"
    assert p.store == "results/r1/data/train_patches.h5"
    assert p.teacher("t") == "results/r1/teachers/t/model.safetensors"
    assert p.testset("Set5") == "results/r1/data/testsets/Set5"
    assert p.dataset("d") == "results/r1/datasets/d.h5"
    assert p.indices("d") == "results/r1/datasets/d.idx.npy"
    assert p.sr("d", "m") == "results/r1/sr/d/m"
    assert p.export("d") == "results/r1/export/d"
    assert p.condensed("idc_r0.1_s0", "img", ".npy") == "results/r1/condense/idc_r0.1_s0/img.npy"


def test_alternatives_match_whole_names_only():
    pattern = alternatives(["a", "ab", "a.b"])
    assert pattern == r"a\.b|ab|a"  # longest first; dots escaped
    assert all(re.fullmatch(pattern, n) for n in ("a", "ab", "a.b"))
    assert not re.fullmatch(pattern, "axb")
    assert alternatives([]) == "__none__"
    assert alternatives({"x": 1, "yy": 2}) == "yy|x"  # a mapping's keys


def test_the_demo_datasets_by_the_job_that_makes_them(demo):
    config, _ = demo
    datasets = config["datasets"]
    assert selection_datasets(datasets) == ["random", "random-s1", "herding", "kcenter", "dcsr"]
    assert condensation_datasets(datasets) == ["idc", "idc-s1"]
    assert folder_imports(datasets) == [] and relabelled_datasets(datasets) == []


def test_replicates_of_a_folder_dataset_share_one_import():
    datasets = {"f": {"method": "folder", "replicate_of": "f", "hr_source": "real"},
                "f-s1": {"method": "folder", "replicate_of": "f", "hr_source": "real"},
                "g": {"method": "folder", "replicate_of": None, "hr_source": "real"},
                "r": {"method": "random", "replicate_of": None, "hr_source": "teacher"}}
    assert folder_imports(datasets) == ["f", "g"]
    assert relabelled_datasets(datasets) == ["r"]


@pytest.mark.parametrize("ratio,text", [(0.1, "0.1"), (1e-05, "0.00001"), (0.25, "0.25")])
def test_a_condensation_key_writes_its_ratio_positionally_and_parses_back(ratio, text):
    key = condense_key({"variant": "a2", "ratio": ratio, "replicate": 3})
    assert key == f"a2_r{text}_s3"
    assert re.fullmatch(CONDENSE_KEY, key)
    assert parse_condense_key(key) == ("a2", ratio, 3)
    with pytest.raises(ValueError, match="not a condensation key"):
        parse_condense_key("a2_r1e-05_s3")


def test_a_condensation_runs_settings_are_resolved_once_and_its_params_leave_execution_out(demo):
    config, run = demo
    runs = run.condensations
    key = runs.key("idc-s1")
    assert key == "idc_r0.1_s1"
    settings = runs.settings(key)
    assert runs.settings(key) is settings  # resolved once per run
    resolved = resolve_condense_config(config["condense"]["params"], variant="idc", ratio=0.1)
    assert settings.to_dict() == resolved
    params = settings.result_settings()
    assert params == split_execution_settings(resolved)[0]
    assert list(params) == [k for k in resolved if k not in EXECUTION_KEYS]  # field order: stable params text
    assert not EXECUTION_KEYS & set(params)


def test_condensed_images_are_the_first_k_less_those_whose_share_is_zero():
    config = _config()
    load_run(config)
    stems = ["a", "b", "c", "d"]
    unknown = CondensationRuns(config, TrainingImages("hr", None, stems, None))
    assert unknown.images("idc") == stems  # counts unknown before cropping: every image
    config["datasets"]["idc"]["images"] = 3
    assert unknown.images("idc") == ["a", "b", "c"]
    counts = [40, 1, 4, 5]  # r = 0.1 of 50: five synthetic patches by largest remainder
    known = CondensationRuns(config, TrainingImages("hr", None, stems, counts))
    shares = known.shares("idc_r0.1_s0")
    assert shares == CondenseConfig.from_dict(resolve_condense_config(
        config["condense"]["params"], variant="idc", ratio=0.1)).synthetic_counts(counts)
    assert known.images("idc") == [s for s, n in zip(stems[:3], shares) if n > 0]
    assert "b" not in known.images("idc")


def test_packs_cover_every_image_of_a_run_once_in_training_order():
    config = _config()
    load_run(config)
    stems = [f"im{i}" for i in range(7)]
    # a second dataset of the same run (same variant, ratio, replicate) on fewer images: the run
    # condenses the union, so both read the same per-image files
    config["datasets"]["idc-3"] = {**config["datasets"]["idc"], "images": 3}
    runs = CondensationRuns(config, TrainingImages("hr", None, stems, None))
    ckey = runs.key("idc")
    assert runs.key("idc-3") == ckey and runs.run_images(ckey) == stems
    assert runs.packs(ckey, 3) == [stems[0:3], stems[3:6], stems[6:]]
    assert runs.packs(ckey, 1) == [[s] for s in stems]
    assert runs.packs(ckey, 64) == [stems]
    assert [runs.pack_of(ckey, s, 3) for s in stems] == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="image 'nope' is not condensed by the run"):
        runs.pack_of(ckey, "nope", 3)
    # images whose share is 0 get no job, packed or not
    counts = [40, 1, 4, 5, 30, 2, 8]
    known = CondensationRuns(config, TrainingImages("hr", None, stems, counts))
    condensed = known.run_images(ckey)
    assert sum(known.packs(ckey, 2), []) == condensed and len(condensed) < len(stems)


def test_a_pack_folder_lies_beside_its_images_files():
    assert PATHS.condense_pack("idc_r0.1_s0", 2) == "results/demo/condense/idc_r0.1_s0/packs/2"
    assert PATHS.condensed("idc_r0.1_s0", "a", ".npy") == "results/demo/condense/idc_r0.1_s0/a.npy"


def test_each_dataset_trains_on_its_own_store_or_indices_into_the_whole_store():
    datasets = {"whole": {"method": "whole", "hr_source": "real"},
                "rand": {"method": "random", "hr_source": "real"},
                "relab": {"method": "random", "hr_source": "teacher"},
                "wrelab": {"method": "whole", "hr_source": "teacher"},
                "idc": {"method": "idc", "hr_source": "real"},
                "f-s1": {"method": "folder", "hr_source": "real", "replicate_of": "f"},
                "g": {"method": "folder", "hr_source": "real", "replicate_of": None}}
    store = PATHS.store
    assert dataset_store(PATHS, datasets, "whole") == {"store": store}
    assert dataset_store(PATHS, datasets, "rand") == {"store": store, "indices": PATHS.indices("rand")}
    assert dataset_store(PATHS, datasets, "relab") == {"store": PATHS.dataset("relab")}
    assert dataset_store(PATHS, datasets, "wrelab") == {"store": PATHS.dataset("wrelab")}
    assert dataset_store(PATHS, datasets, "idc") == {"store": PATHS.dataset("idc")}
    assert dataset_store(PATHS, datasets, "f-s1") == {"store": PATHS.dataset("f")}
    assert dataset_store(PATHS, datasets, "g") == {"store": PATHS.dataset("g")}


def test_a_selection_reads_the_feature_teacher_and_the_set_it_is_sized_by(demo):
    config, _ = demo
    assert selection_inputs(config, PATHS, "random") == {"store": PATHS.store}
    assert selection_inputs(config, PATHS, "herding") == {"store": PATHS.store,
                                                          "teacher": PATHS.teacher("swinir")}
    config["datasets"]["random"]["pairs_of"] = "idc"
    assert selection_inputs(config, PATHS, "random")["pairs_of"] == PATHS.dataset("idc")
    config["datasets"]["random"]["pairs_of"] = "herding"
    inputs = selection_inputs(config, PATHS, "random")
    assert inputs["pairs_of"] == PATHS.store and inputs["pairs_of_indices"] == PATHS.indices("herding")


def test_relabelling_reads_the_up_sampler_and_a_selections_indices():
    datasets = {"w": {"method": "whole", "upsampler": "up"}, "r": {"method": "random", "upsampler": "up"}}
    assert relabel_inputs(PATHS, datasets, "w") == {"store": PATHS.store, "upsampler": PATHS.teacher("up")}
    assert relabel_inputs(PATHS, datasets, "r")["indices"] == PATHS.indices("r")


def test_an_import_depends_on_every_visible_file_of_its_folders(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    for folder in (hr, lr):
        (folder / "sub").mkdir(parents=True)
        for name in ("b.png", "a.png", ".hidden.png"):
            (folder / name).write_bytes(b"")
    assert visible_files(hr) == [str(hr / "a.png"), str(hr / "b.png")]
    assert folder_inputs({"hr": str(hr)}) == {"hr": str(hr), "hr_files": visible_files(hr)}
    inputs = folder_inputs({"hr": str(hr), "lr": str(lr), "meta_info": "m.txt"})
    assert inputs == {"hr": str(hr), "hr_files": visible_files(hr), "lr": str(lr), "meta_info": "m.txt",
                      "lr_files": visible_files(lr)}
    crop = {"hr_size": 256, "step": 128}
    assert folder_crop({"hr_size": None, "step": None}, crop) == crop
    assert folder_crop({"hr_size": 64, "step": None}, crop) == {"hr_size": 64, "step": 128}


def test_config_slices_hold_what_defines_a_result_with_sorted_keys(demo):
    config, _ = demo
    assert list(canonical({"b": {"d": 1, "c": 2}, "a": 0})) == ["a", "b"]
    assert list(canonical({"b": {"d": 1, "c": 2}})["b"]) == ["c", "d"]
    teacher = config["teachers"]["swinir"]
    assert network_spec(teacher) == canonical({k: teacher[k] for k in ("arch", "kwargs", "train")})
    assert network_build(teacher) == canonical({k: teacher[k] for k in ("arch", "kwargs")})
    assert crop_settings({"workers": 8, "step": 1, "hr_size": 2}) == {"hr_size": 2, "step": 1}
    assert validation_settings({"crop_border": 4, "test_y_channel": True, "other": 1}) == {
        "crop_border": 4, "test_y_channel": True}


def test_a_datasets_own_selection_settings_win_over_the_baselines(demo):
    config, _ = demo
    config["datasets"]["herding"]["selection"] = {"herding_rule": "deepcore"}
    params = selection_params(config, "herding")
    assert params["method"] == "herding" and params["ratio"] == 0.1 and params["n_splits"] == 2
    assert params["feature_source"] == "teacher"
    assert "deepcore" in params.values()
    assert selection_params(config, "random") == {"method": "random", "ratio": 0.1, "n_splits": 2}


def test_requests_are_capped_for_small_clusters():
    config = {"max_cpus": 2, "max_mem_mb": 4000}
    assert capped_cpus(config, 8) == 2 and capped_cpus(config, 1) == 1
    assert capped_mem(config, 16000) == 4000
    uncapped = {"max_cpus": None, "max_mem_mb": None}
    assert capped_cpus(uncapped, 8) == 8 and capped_mem(uncapped, 16000) == 16000
    res = {"gpu": 1, "cpus": 8, "mem_mb": 16000, "runtime": 60}
    expected = {"gpu": 1, "cpus_per_task": 2, "mem_mb": 4000, "runtime": 60}
    assert job_resources(config, {"resources": res}) == expected
    assert job_resources(config, res) == expected
    # a pack of 4 images asks for one image's GPU, CPUs and memory and 4 times its runtime
    assert packed_resources(config, {"resources": res}, 4) == {**expected, "runtime": 240}


def test_tables_read_every_replicate_of_their_rows(demo):
    config, _ = demo
    assert verdict_tables(config) == ["verdict"] and paper_tables(config) == ["table1"]
    entries = table_entries(config, "verdict")
    assert ("random", "random-s1", 1, "edsr") in entries and ("random", "random", 0, "edsr") in entries
    assert table_metrics(config, PATHS, "verdict") == [f"{PATHS.sr(d, m)}/metrics.csv" for _, d, _, m in entries]
    spec = paper_table_spec(config, "table1")
    assert "kind" not in spec and spec["title"] == config["tables"]["table1"]["title"]
    verdict = verdict_spec(config, "verdict")
    assert verdict["reference"] == "random" and verdict["whole"] == "whole"
    assert verdict["seed"] == derive_seed(config["seed"], 5, "verdict")
    assert list(verdict) == sorted(verdict)
    assert table_outputs(PATHS, "t", verdict=True) == ["results/demo/tables/t.csv", "results/demo/tables/t.md"]
    assert all_targets(config, PATHS) == [
        *(f"results/demo/tables/table1.{e}" for e in ("csv", "md", "tex", "html")),
        "results/demo/tables/verdict.csv", "results/demo/tables/verdict.md",
        "results/demo/figures/done.txt", "results/demo/export/idc"]


def test_the_figures_draw_the_target_tables_models_and_their_condensations(demo):
    config, run = demo
    pairs = figure_pairs(config)
    assert pairs == sorted(set(pairs)) and ("idc", "edsr") in pairs
    inputs = figure_inputs(config, run.paths, run.condensations)
    assert inputs["stores"] == [PATHS.dataset("idc")]  # idc-s1 is no row of its own
    images = run.condensations.images("idc")
    assert inputs["condense_logs"] == [PATHS.condensed("idc_r0.1_s0", s, ".json") for s in images]
    assert inputs["snapshots"] == [PATHS.condensed("idc_r0.1_s0", s, ".snapshots.npz") for s in images[:3]]
    assert inputs["real_store"] == PATHS.store


def test_the_card_of_a_condensed_set_says_how_it_was_made(demo):
    config, run = demo
    card = export_card(config, "idc-s1", training=run.training, condensations=run.condensations)
    assert card["name"] == "idc-s1" and card["method"] == "idc" and card["ratio"] == 0.1
    assert card["source"] == {"kind": "demo", "where": run.training.hr_dir, "licence": card["source"]["licence"]}
    assert card["config"]["condense"] == canonical(run.condensations.settings("idc_r0.1_s1").result_settings())
    assert card["config"]["extractor"] == network_spec(config["teachers"]["swinir"])
    assert card["config"]["crop"] == crop_settings(config["data"]["crop"])
    assert card["seeds"]["condense_image"] == {
        s: derive_seed(config["seed"], 2, 1, run.training.index[s]) for s in run.condensations.images("idc-s1")}
    assert card["content"].startswith("LR: synthetic patches condensed by IDC")
    assert export_inputs(PATHS, config["datasets"], "idc") == {
        "store": PATHS.dataset("idc"), "real": PATHS.store,
        "memorisation": "results/demo/datasets/idc.memorisation.json"}


def test_the_card_of_a_selection_a_relabelled_set_and_an_import(demo):
    config, run = demo
    card = export_card(config, "random-s1", training=run.training, condensations=run.condensations)
    assert card["config"]["selection"] == selection_params(config, "random-s1")
    assert card["seeds"]["selection"] == derive_seed(config["seed"], 3, 1, "random")
    assert card["content"] == "real patch pairs selected by random"
    config["datasets"]["whole"] = {**config["datasets"]["whole"], "hr_source": "teacher", "upsampler": "mambairv2_up"}
    card = export_card(config, "whole", training=run.training, condensations=run.condensations)
    assert card["content"].endswith("(relabelling control)")
    config["datasets"]["ext"] = {**copy.deepcopy(config["datasets"]["whole"]), "method": "folder", "hr": "x/HR",
                                 "hr_source": "real", "replicate_of": None}
    card = export_card(config, "ext", training=run.training, condensations=run.condensations)
    assert card["source"]["where"] == "x/HR" and card["source"]["kind"] == "folder"
    assert "crop" not in card["config"]
    assert export_inputs(PATHS, config["datasets"], "ext") == {"store": PATHS.dataset("ext")}
