"""Configuration schema: shipped configs validate; typos and bad values give one-line errors."""

from __future__ import annotations

import copy

import pytest
import yaml

from idc.config import ConfigError, load_config, validate_config
from idc.schema import load_schema
from tests.conftest import PROJECT_ROOT

CONFIGS = ["config.yaml", "demo.yaml", "mini.yaml", "slurm-ci.yaml"]


def _read(name: str) -> dict:
    with open(PROJECT_ROOT / "config" / name) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_validate(name):
    config = load_config(PROJECT_ROOT / "config" / name)
    assert config["run"]
    for table in config["targets"]:
        assert table in config["tables"]


@pytest.mark.parametrize("overlay, added_dataset", [("mini-herding.yaml", "herding-deepcore")])
def test_overlay_merged_into_mini_validates(overlay, added_dataset):
    """The supplementary overlays are given after mini.yaml; Snakemake merges them key by key."""
    from snakemake.utils import update_config

    config = _read("mini.yaml")
    datasets_before = set(config["datasets"])
    update_config(config, _read(overlay))
    config = validate_config(config)
    assert config["run"] == "mini" and "table1" in config["targets"]
    assert set(config["datasets"]) == datasets_before | {added_dataset}
    if overlay == "mini-teacher.yaml":
        assert config["datasets"]["idc-t4x"]["upsampler"] == "mambairv2_up_4x"
        assert set(config["teachers"]) == {"swinir", "mambairv2_up", "mambairv2_up_4x"}


def test_dataset_selection_settings_belong_to_its_method():
    config = _read("demo.yaml")
    config["datasets"]["herding-dc"] = {"method": "herding", "ratio": 0.1, "selection": {"herding_rule": "deepcore"}}
    assert validate_config(copy.deepcopy(config))["datasets"]["herding-dc"]["selection"] == {"herding_rule": "deepcore"}
    config["datasets"]["random-x"] = {"method": "random", "ratio": 0.1, "selection": {"herding_rule": "deepcore"}}
    with pytest.raises(ConfigError, match="datasets.random-x.selection.herding_rule: not a setting of method 'random'"):
        validate_config(copy.deepcopy(config))
    config["datasets"]["random-x"] = {"method": "dcsr", "ratio": 0.1, "selection": {"dcsr_thresh": "mean"}}
    with pytest.raises(ConfigError, match="dcsr_thresh"):
        validate_config(config)


def test_released_weights_only_for_teachers():
    config = _read("demo.yaml")
    # a new dict: in demo.yaml models.swinir is a YAML alias of the teacher
    config["teachers"]["swinir"] = {**config["teachers"]["swinir"], "weights": "weights/swinir.pth"}
    assert validate_config(copy.deepcopy(config))["teachers"]["swinir"]["weights"] == "weights/swinir.pth"
    config["models"]["edsr"] = {**config["models"]["edsr"], "weights": "weights/edsr.pth"}
    with pytest.raises(ConfigError, match="models.edsr.weights: only teachers"):
        validate_config(config)


def test_defaults_are_filled_inside_nested_definitions():
    config = validate_config({"run": "x", "targets": []})
    assert config["data"]["crop"] == {"hr_size": 256, "step": 128, "thresh": 0, "workers": 8}
    assert config["test"]["crop_border"] == 2  # the paper's setting
    assert config["baselines"]["n_splits"] == 20
    paper = load_config(PROJECT_ROOT / "config" / "config.yaml")
    assert paper["models"]["edsr"]["train"]["ema_decay"] == 0.0
    assert paper["datasets"]["idc"]["images"] is None


def test_paper_config_matches_the_paper():
    paper = load_config(PROJECT_ROOT / "config" / "config.yaml")
    assert paper["data"]["crop"]["hr_size"] == 256 and paper["data"]["crop"]["step"] == 128
    assert paper["models"]["edsr"]["train"]["steps"] == 300_000
    assert paper["models"]["edsr"]["train"]["lr"] == 1e-4
    assert paper["models"]["swinir"]["train"]["steps"] == 500_000
    assert paper["models"]["swinir"]["train"]["lr"] == 2e-4
    assert paper["models"]["mambairv2"]["train"]["lr"] == 1e-4
    assert paper["datasets"]["idc"]["ratio"] == 0.1
    assert paper["tables"]["table1"]["datasets"] == ["whole", "random", "herding", "kcenter", "dcsr", "idc"]


def _error_for(mutate) -> str:
    config = _read("demo.yaml")
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    message = str(err.value)
    assert "\n" not in message
    return message


BAD_CONFIGS = {
    "typo top level": (lambda c: c.update(sed=1), "sed"),
    "typo nested": (lambda c: c["data"]["crop"].update(hr_sise=64), "data.crop.hr_sise"),
    "typo in a model's train settings": (lambda c: c["models"]["edsr"]["train"].update(stpes=3), "stpes"),
    "ratio zero": (lambda c: c["datasets"]["random"].update(ratio=0), "datasets.random.ratio"),
    "ratio one": (lambda c: c["datasets"]["idc"].update(ratio=1.0), "datasets.idc.ratio"),
    "ratio above one": (lambda c: c["datasets"]["idc"].update(ratio=1.5), "datasets.idc.ratio"),
    "negative steps": (lambda c: c["models"]["edsr"]["train"].update(steps=-1), "models.edsr.train.steps"),
    "unknown method": (lambda c: c["datasets"]["random"].update(method="coreset"), "datasets.random.method"),
    "unknown architecture": (lambda c: c["models"]["edsr"].update(arch="rcan"), "models.edsr.arch"),
    "table names unknown model": (lambda c: c["tables"]["table1"]["models"].append("rcan"), "tables.table1.models"),
    "table names unknown dataset": (
        lambda c: c["tables"]["table1"]["datasets"].append("gsdd"),
        "tables.table1.datasets",
    ),
    "unknown target": (lambda c: c.update(targets=["table9"]), "targets"),
    "upsampler not a teacher": (lambda c: c["datasets"]["idc"].update(upsampler="rcan"), "datasets.idc.upsampler"),
    "extractor not a teacher": (lambda c: c["condense"].update(extractor="vgg"), "condense.extractor"),
    "wrong type": (lambda c: c["data"]["crop"].update(step="32"), "data.crop.step"),
    "bad run name": (lambda c: c.update(run="my run"), "run"),
    "validation set unknown": (lambda c: c["data"].update(validation="Urban100"), "data.validation"),
    "unknown condensation key": (lambda c: c["condense"]["params"].update(stepz=3), "stepz"),
    "unknown budget rule": (lambda c: c["condense"]["params"].update(budget="fair"), "condense.params.budget"),
    "unknown IDC variant": (lambda c: c["datasets"]["idc"].update(variant="v9"), "datasets.idc.variant"),
    "folder source without folder": (lambda c: c["data"]["trainset"].update(source="folder"), "data.trainset.folder"),
    "first-K images of the demo set": (lambda c: c["data"]["trainset"].update(images=3), "data.trainset.images"),
    "first-K images zero": (lambda c: c["data"]["trainset"].update(source="folder", folder="/tmp", images=0),
                            "data.trainset.images"),
    # names that become path components: one anchored rule (a trailing newline passes `$`)
    "run is ..": (lambda c: c.update(run=".."), "run"),
    "run is .": (lambda c: c.update(run="."), "run"),
    "run with a slash": (lambda c: c.update(run="../x"), "run"),
    "run absolute": (lambda c: c.update(run="/tmp/x"), "run"),
    "run with a trailing newline": (lambda c: c.update(run="demo\n"), "run"),
    "test-set key escaping": (lambda c: c["data"]["testsets"].update({"../../victim": {"source": "demo"}}),
                              "data.testsets"),
    "test-set key with a newline": (lambda c: c["data"]["testsets"].update({"Set5\n": {"source": "demo"}}),
                                    "data.testsets"),
    "teacher key with a slash": (lambda c: c["teachers"].update({"a/b": c["teachers"]["swinir"]}), "teachers"),
    "model key hidden": (lambda c: c["models"].update({".edsr": c["models"]["edsr"]}), "models"),
    "dataset key with a newline": (lambda c: c["datasets"].update({"whole\n": {"method": "whole"}}), "datasets"),
    "table key with a newline": (lambda c: c["tables"].update({"t\n": c["tables"]["table1"]}), "tables"),
    # cross-field rules the jobs rely on, checked before planning (demo.yaml shares one train
    # mapping between networks through a YAML alias: a case changes a copy)
    "hr_size not a multiple of the scale": (lambda c: c["data"]["crop"].update(hr_size=66), "data.crop.hr_size"),
    "step not a multiple of the scale": (lambda c: c["data"]["crop"].update(step=30), "data.crop.step"),
    "imported folder crop not a multiple of the scale": (
        lambda c: c["datasets"].update(imp={"method": "folder", "hr": "/x/HR", "hr_size": 66}), "datasets.imp.hr_size"),
    "gt_size not a multiple of the scale": (lambda c: c["models"]["edsr"].update(train={**c["models"]["edsr"]["train"], "gt_size": 30}),
                                            "models.edsr.train.gt_size"),
    "gt_size beyond the crop": (lambda c: c["models"]["edsr"].update(train={**c["models"]["edsr"]["train"], "gt_size": 128}),
                                "models.edsr.train.gt_size"),
    "scale differs from the networks": (lambda c: c.update(scale=2), "kwargs.upscale"),
    "architecture kwarg misspelt": (lambda c: c["models"]["edsr"]["kwargs"].update(num_feats=8),
                                    "models.edsr.kwargs"),
    "architecture kwarg of the wrong type": (lambda c: c["models"]["edsr"]["kwargs"].update(num_feat="abc"),
                                             "models.edsr.kwargs"),
    "architecture far too large": (lambda c: c["models"]["edsr"]["kwargs"].update(num_feat=600000),
                                   "models.edsr.kwargs"),
    "ratio NaN": (lambda c: c["datasets"]["idc"].update(ratio=float("nan")), "datasets.idc.ratio"),
    "learning rate infinite": (lambda c: c["models"]["edsr"].update(train={**c["models"]["edsr"]["train"], "lr": float("inf")}),
                               "models.edsr.train.lr"),
    "gamma NaN": (lambda c: c["models"]["edsr"].update(train={**c["models"]["edsr"]["train"], "gamma": float("nan")}), "models.edsr.train.gamma"),
    "condensation lr NaN": (lambda c: c["condense"]["params"].update(lr=float("nan")), "condense.params"),
    "condensation boolean as a string": (lambda c: c["condense"]["params"].update(use_pair="false"),
                                         "condense.params"),
    # a baseline sized by another training set (pairs_of), in place of its ratio
    "pairs_of and ratio": (lambda c: c["datasets"]["random"].update(pairs_of="idc"), "datasets.random.pairs_of"),
    "pairs_of an unknown dataset": (lambda c: c["datasets"]["random"].update(pairs_of="mine", ratio=None) or
                                    c["datasets"]["random"].pop("ratio"), "datasets.random.pairs_of"),
    "pairs_of itself": (lambda c: c["datasets"]["random"].update(pairs_of="random") or
                        c["datasets"]["random"].pop("ratio"), "datasets.random.pairs_of"),
    "pairs_of on IDC": (lambda c: c["datasets"]["idc"].update(pairs_of="whole") or c["datasets"]["idc"].pop("ratio"),
                        "datasets.idc.pairs_of"),
    "pairs_of a dataset sized by pairs_of": (
        lambda c: c["datasets"].update(r2={"method": "random", "pairs_of": "idc"},
                                       r3={"method": "random", "pairs_of": "r2"}), "datasets.r3.pairs_of"),
    "missing local DIV2K folder": (lambda c: c["data"]["trainset"].update(source="div2k",
                                                                          div2k_local_dir="/nonexistent/DIV2K"),
                                   "data.trainset.div2k_local_dir"),
}


def test_ratios_that_keep_no_patch_are_refused_before_cropping():
    from idc.config import check_ratios

    config = validate_config(_read("demo.yaml"))
    check_ratios(config, [40, 60])  # 10 % of 100 patches: 10
    config["datasets"]["random"]["ratio"] = 0.005
    with pytest.raises(ConfigError, match=r"datasets.random.ratio: ratio 0.005 of N=100 keeps no patch"):
        check_ratios(config, [40, 60])
    check_ratios(config, None)  # demo: the count is unknown before its images are built
    config["data"]["trainset"] = {**config["data"]["trainset"], "source": "div2k"}
    config["data"]["crop"] = {"hr_size": 256, "step": 128, "thresh": 0, "workers": 1}
    config["datasets"]["random"]["ratio"] = 5e-06  # 0.6 of DIV2K's 120,765 pairs
    with pytest.raises(ConfigError, match="N=120765 keeps no patch"):
        check_ratios(config, None)


def test_pairs_of_replaces_ratio_for_a_selection_and_its_replicates():
    config = _read("demo.yaml")
    config["datasets"]["random"].pop("ratio")
    config["datasets"]["random"].update(pairs_of="idc", replicates=2)
    datasets = validate_config(config)["datasets"]
    assert datasets["random"]["pairs_of"] == datasets["random-s1"]["pairs_of"] == "idc"
    assert "ratio" not in datasets["random-s1"]


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_gives_one_line_error_naming_the_key(case):
    mutate, key = BAD_CONFIGS[case]
    assert key in _error_for(mutate)


def test_schema_rejects_unknown_keys_everywhere():
    """Every object in the schema either lists its properties with additionalProperties false or
    is a map whose values have a schema: a misspelling can never pass silently."""
    schema = load_schema()
    # condense.params documents some CondenseConfig fields in the schema; all of its keys are
    # checked by name against CondenseConfig instead ("unknown condensation key" above).
    checked_by_condense_config = {"schema.properties.condense.properties.params"}

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and where not in checked_by_condense_config:
                assert node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "schema")


def test_validation_does_not_share_state_between_calls():
    config = _read("demo.yaml")
    first = validate_config(copy.deepcopy(config))
    second = validate_config(copy.deepcopy(config))
    assert first == second


def test_the_gpu_switch_set_merged_into_the_paper_config_validates():
    """config/gpu.yaml is given after config.yaml; every key it sets is a condensation setting."""
    from snakemake.utils import update_config

    from idc.condense.config import CondenseConfig, resolve_condense_config

    config = _read("config.yaml")
    update_config(config, _read("gpu.yaml"))
    config = validate_config(config)
    resolved = CondenseConfig.from_dict(resolve_condense_config(config["condense"]["params"], variant="idc",
                                                                ratio=0.1))
    assert resolved.fused_attention and resolved.channels_last and resolved.compile_extractor
    assert resolved.compile_mode == "reduce-overhead" and not resolved.autocast_bf16


def test_schema_is_package_data():
    """The schema is read through importlib.resources from the package (so an installed package
    validates a config), pyproject.toml ships it, and the tree holds no second copy."""
    from importlib import resources

    resource = resources.files("idc").joinpath("schemas", "config.schema.yaml")
    assert resource.is_file() and load_schema() == yaml.safe_load(resource.read_text())
    assert '"idc" = ["schemas/config.schema.yaml"]' in (PROJECT_ROOT / "pyproject.toml").read_text()
    assert not (PROJECT_ROOT / "workflow" / "schemas").exists()


def test_verdict_overlay_merged_into_the_paper_config_validates():
    """config/verdict-div2k.yaml adds replicates and the controls to the paper config's r = 1% rows."""
    from snakemake.utils import update_config

    config = _read("config.yaml")
    update_config(config, _read("verdict-div2k.yaml"))
    config = validate_config(config)
    assert config["targets"] == ["verdict"]
    datasets = config["datasets"]
    for row in ("whole", "random-r1", "random_teacher-r1", "dcsr-r1", "idc-start-r1", "idc-r1", "idc-v3-r1"):
        assert [datasets[k]["replicate"] for k in (row, f"{row}-s1", f"{row}-s2")] == [0, 1, 2]
    assert datasets["random_teacher-r1"]["hr_source"] == "teacher"
    assert datasets["idc"]["replicate_of"] is None  # the r = 10% rows are left alone


def test_evaluate_folder_overlay_merged_into_the_paper_config_validates():
    """config/evaluate-folder.yaml: your set, Random sized by it and Whole, three replicates each,
    read by a verdict table against Random with Whole as the positive control."""
    from snakemake.utils import update_config

    config = _read("config.yaml")
    update_config(config, _read("evaluate-folder.yaml"))
    config = validate_config(config)
    table = config["tables"][config["targets"][0]]
    assert table["kind"] == "verdict" and table["compare_to"] == "random-yours" and table["whole"] == "whole"
    datasets = config["datasets"]
    for row in table["datasets"]:
        assert [datasets[k]["replicate"] for k in (row, f"{row}-s1", f"{row}-s2")] == [0, 1, 2]
    assert datasets["random-yours-s2"]["pairs_of"] == "yours" and datasets["yours"]["method"] == "folder"
    assert set(table["testsets"]) <= set(config["data"]["testsets"])


@pytest.mark.parametrize("name", ["verdict.yaml", "verdict-pilot.yaml"])
def test_verdict_configs_validate_with_disjoint_test_images(name):
    config = load_config(PROJECT_ROOT / "config" / name)
    train = config["data"]["trainset"]
    for spec in config["data"]["testsets"].values():
        if spec["hr"] == "BSD100/HR":  # the training photos are the first `images` of that folder
            assert spec["skip"] >= train["images"]
