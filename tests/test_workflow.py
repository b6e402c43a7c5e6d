"""The Snakemake workflow: formatting, lint, dry runs, the demo end to end and stale-only reruns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.workflow_helpers import copy_workflow, planned_jobs, snakemake


def test_snakefmt_check():
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check():
    """The Python code passes ruff's linter (rules in pyproject.toml)."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=PROJECT_ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_has_no_findings(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(["--lint"], cwd=work)
    assert "Congratulations" in proc.stdout + proc.stderr


def _paper_override(tmp_path: Path) -> Path:
    """Empty benchmark folders so that the paper config can be planned without the data."""
    root = tmp_path / "benchmarks"
    for name in ("Set5", "Set14", "BSD100", "Urban100", "Manga109"):
        (root / name / "HR").mkdir(parents=True)
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"data": {"benchmark_root": str(root)}}))
    return override


def test_paper_config_dry_run_plans_every_stage(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    override = _paper_override(tmp_path)
    proc = snakemake(["-n", "--configfile", "config/config.yaml", str(override)], cwd=work)
    jobs = planned_jobs(proc.stdout)
    assert jobs["download_div2k"] == 1
    assert jobs["crop_patches"] == 1
    assert jobs["train_teacher"] == 2  # SwinIR-light extractor, MambaIRv2 up-sampler
    assert jobs["condense_image"] == 800  # one job per DIV2K image
    assert jobs["upsample_condensed"] == 1
    assert jobs["select_baseline"] == 4
    assert jobs["train_sr"] == 18 and jobs["test_sr"] == 18  # 6 datasets x 3 models
    assert jobs["prepare_testset"] == 5
    assert jobs["make_table"] == 1


@pytest.mark.parametrize("table,expected", [("table2", {"condense_image": 80 * 8}), ("table8", {"condense_image": 1600})])
def test_paper_tables_are_separate_targets(tmp_path, table, expected):
    work = copy_workflow(tmp_path / "wf")
    override = _paper_override(tmp_path)
    proc = snakemake(
        ["-n", "--configfile", "config/config.yaml", str(override), "--config", f"targets=[{table}]"], cwd=work
    )
    jobs = planned_jobs(proc.stdout)
    for rule, count in expected.items():
        assert jobs[rule] == count


def test_teacher_with_released_weights_is_imported_not_trained(tmp_path):
    """The paper's pre-trained teachers: `teachers.<name>.weights` replaces that teacher's training."""
    work = copy_workflow(tmp_path / "wf")
    override = _paper_override(tmp_path)
    weights = tmp_path / "MambaIRv2_SR_x4.pth"
    weights.write_bytes(b"stand-in: a dry run does not read it")
    with open(override) as fh:
        extra = yaml.safe_load(fh)
    extra["teachers"] = {"mambairv2_up": {"weights": str(weights)}}
    override.write_text(yaml.safe_dump(extra))
    proc = snakemake(["-n", "--configfile", "config/config.yaml", str(override)], cwd=work)
    jobs = planned_jobs(proc.stdout)
    assert jobs["import_teacher"] == 1 and jobs["train_teacher"] == 1  # the SwinIR extractor is trained
    assert "teachers/mambairv2_up/validation.csv" in proc.stdout
    assert jobs["upsample_condensed"] == 1 and jobs["condense_image"] == 800


def test_import_teacher_job_converts_and_scores(tmp_path):
    """The import_teacher job end to end on the demo: a released checkpoint (BasicSR layout) of the
    demo's up-sampler becomes the teacher file, scored on the validation set."""
    import torch

    from idc.archs import build_model, load_model

    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    spec = config["teachers"]["mambairv2_up"]
    torch.manual_seed(0)
    released = build_model(spec["arch"], **spec["kwargs"])
    torch.save({"params_ema": released.state_dict()}, tmp_path / "released.pth")
    config["teachers"]["mambairv2_up"] = {**spec, "weights": str(tmp_path / "released.pth")}
    (tmp_path / "imported.yaml").write_text(yaml.safe_dump(config))
    target = "results/demo/teachers/mambairv2_up/model.safetensors"
    proc = snakemake([target, "--cores", "1", "--configfile", str(tmp_path / "imported.yaml")], cwd=work)
    assert "import_teacher" in proc.stdout + proc.stderr and "rule train_teacher" not in proc.stdout + proc.stderr
    imported = load_model(work / target)
    imported = imported[0] if isinstance(imported, tuple) else imported
    for name, value in released.state_dict().items():
        assert torch.equal(imported.state_dict()[name], value), name
    scores = pd.read_csv(work / "results/demo/teachers/mambairv2_up/validation.csv")
    assert len(scores) > 0 and set(scores["testset"]) == {"DemoTest"}
    assert "imported teacher on DemoTest: PSNR" in (work / "results/demo/logs/import_teacher/mambairv2_up.log").read_text()


def test_config_typo_stops_before_planning(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["condense"]["extracter"] = "swinir"
    bad.write_text(yaml.safe_dump(config))
    proc = snakemake(["-n", "--configfile", str(bad)], cwd=work, check=False)
    assert proc.returncode != 0
    assert "unknown config key condense.extracter" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_demo_produces_table1(demo_run):
    table = pd.read_csv(demo_run / "results/demo/tables/table1.csv")
    assert set(table.columns) >= {"method", "model", "testset", "psnr", "ssim"}
    assert set(table["method"]) == {"whole", "random", "herding", "kcenter", "dcsr", "idc"}
    assert set(table["model"]) == {"edsr", "swinir", "mambairv2"}
    assert table["psnr"].between(5, 60).all() and table["ssim"].between(0, 1).all()
    assert (demo_run / "results/demo/tables/table1.md").read_text().count("|") > 20
    assert "\\begin{tabular}" in (demo_run / "results/demo/tables/table1.tex").read_text()
    for log in (demo_run / "results/demo/logs").rglob("*.log"):
        assert log.stat().st_size > 0, f"empty job log {log}"


@pytest.mark.slow
def test_demo_writes_a_verdict_over_two_replicates(demo_run):
    tables = demo_run / "results/demo/tables"
    verdict = pd.read_csv(tables / "verdict.csv", keep_default_na=False)
    versus_random = verdict[(verdict["versus"] == "random") & (verdict["testset"] == "all")
                            & (verdict["metric"] == "psnr")].set_index("method")
    assert set(versus_random.index) == {"whole", "idc"}
    assert (versus_random["n_replicates"] == 2).all()
    assert (versus_random["ci_low"].astype(float) <= versus_random["diff"].astype(float)).all()
    assert set(verdict["reading"]) <= {"better", "worse", "not resolved", ""}
    text = (tables / "verdict.md").read_text()
    control = versus_random.loc["whole"]
    # The control comes first; when it is not resolved the table says so above everything else.
    if control["reading"] != "better":
        assert text.startswith("> **This setting cannot resolve differences in training data")
    assert "Positive control (edsr): Whole - Random" in text
    # Table 1 shows the mean of the two replicates of Random.
    table1 = pd.read_csv(tables / "table1.csv").set_index(["method", "model", "testset"])
    means = verdict[(verdict["versus"] == "") & (verdict["testset"] == "DemoTest")
                    & (verdict["metric"] == "psnr")].set_index("method")["mean"].astype(float)
    assert table1.loc[("random", "edsr", "DemoTest"), "psnr"] == pytest.approx(means["random"])


@pytest.mark.slow
def test_demo_idc_trains_on_as_many_pairs_as_random(demo_run):
    from idc.data.store import PatchStore

    results = demo_run / "results/demo"
    random = np.load(results / "datasets/random.idx.npy")
    n_real = len(PatchStore(results / "data/train_patches.h5"))
    assert len(PatchStore(results / "datasets/idc.h5")) == len(random) == n_real // 10  # floor(0.1 N)


@pytest.mark.slow
def test_demo_rerun_has_nothing_to_do(demo_run):
    proc = snakemake(["-n"], cwd=demo_run)
    assert planned_jobs(proc.stdout) == {}, proc.stdout[-3000:]


def _dry_run_with(demo_run: Path, tmp_path: Path, mutate) -> dict[str, int]:
    config = yaml.safe_load((demo_run / "config" / "demo.yaml").read_text())
    mutate(config)
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    return planned_jobs(snakemake(["-n", "--configfile", str(changed)], cwd=demo_run).stdout)


@pytest.mark.slow
def test_changing_one_models_training_reruns_only_that_model(demo_run, tmp_path):
    def change_lr(config):
        # a new dict: in demo.yaml the recipe is a YAML anchor shared with the teachers
        config["models"]["edsr"]["train"] = {**config["models"]["edsr"]["train"], "lr": 1e-3}

    jobs = _dry_run_with(demo_run, tmp_path, change_lr)
    n_datasets = 9  # six rows, three of them with two replicates
    assert jobs.pop("train_sr") == n_datasets
    assert jobs.pop("test_sr") == n_datasets
    assert jobs.pop("make_table") == 1
    assert jobs.pop("make_verdict") == 1  # EDSR is the verdict's model
    jobs.pop("plot_figures", None)  # the trajectories it draws changed
    jobs.pop("all", None)
    assert jobs == {}, jobs


@pytest.mark.slow
def test_changing_the_condensation_ratio_keeps_data_and_teachers(demo_run, tmp_path):
    def change_ratio(config):
        config["datasets"]["idc"] = {**config["datasets"]["idc"], "ratio": 0.2}

    jobs = _dry_run_with(demo_run, tmp_path, change_ratio)
    assert jobs.get("condense_image", 0) > 0
    for rule in ("build_demo_images", "prepare_testset", "crop_patches", "train_teacher", "select_baseline"):
        assert rule not in jobs, jobs
    assert jobs["train_sr"] == 6  # IDC's two replicates only, for the three models


@pytest.mark.slow
def test_a_datasets_own_selection_setting_reruns_only_that_selection(demo_run, tmp_path):
    def deepcore_herding(config):
        config["datasets"]["herding"] = {**config["datasets"]["herding"], "selection": {"herding_rule": "deepcore"}}

    jobs = _dry_run_with(demo_run, tmp_path, deepcore_herding)
    assert jobs.pop("select_baseline") == 1
    assert jobs.pop("train_sr") == jobs.pop("test_sr") == 3  # herding x three models
    jobs.pop("make_table")
    jobs.pop("plot_figures", None)
    jobs.pop("all", None)
    assert jobs == {}, jobs


@pytest.mark.slow
def test_changing_condensation_execution_settings_reruns_nothing(demo_run, tmp_path):
    """Logging, checkpoint interval, fast path, fused attention: how a job runs, not its result."""
    def change_execution(config):
        config["condense"]["params"] = {**config["condense"]["params"], "log_every": 7,
                                        "checkpoint_every": 13, "fast_path": False,
                                        "fused_attention": True}

    assert _dry_run_with(demo_run, tmp_path, change_execution) == {}


@pytest.mark.slow
def test_demo_report_builds(demo_run):
    pytest.importorskip("pygments")
    report = demo_run / "report.html"
    snakemake(["--report", str(report)], cwd=demo_run)
    assert report.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_logs_condensation_diagnostics_and_draws_progress(demo_run):
    """Each instance's log carries the quality diagnostics; the figure set shows the first instances'
    synthetic patches at several steps beside their real patches, and each weighted loss term."""
    import json

    logs = sorted((demo_run / "results/demo/condense").rglob("*.json"))
    assert logs
    for path in logs:
        log = json.loads(path.read_text())
        assert {"initial", "final", "best", "reference"} <= set(log["diagnostics"]), path
        assert all("diag_mmd" in r and "diag_coverage_psnr" in r for r in log["steps"]), path
    figures = demo_run / "results/demo/figures"
    done = (figures / "done.txt").read_text().split()
    progress = [name for name in done if Path(name).name.startswith("progress_")]
    assert len(progress) == 3 and all((figures / name).stat().st_size > 5_000 for name in progress)
    assert any(Path(name).name == "condense_losses.png" for name in done)
