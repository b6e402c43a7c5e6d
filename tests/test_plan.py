"""Cost plan: job counts from the configuration, hours from the throughput table, fit checks."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from idc.config import load_config
from idc.plan import format_plan, load_table, match_figure, plan
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def paper():
    return load_config("config/config.yaml")


def _rows(rows, rule):
    return {r.what: r for r in rows if r.rule == rule}


def test_paper_table1_counts_and_hours(paper):
    rows = plan(paper)
    train = _rows(rows, "train_sr")
    # Table 1: 6 datasets x 3 models.
    assert {m: r.jobs for m, r in train.items()} == {"edsr": 6, "swinir": 6, "mambairv2": 6}
    # EDSR-baseline at the measured batch and crop: 300k steps at 67.9 steps/s.
    assert train["edsr"].hours == pytest.approx(300_000 / 67.9 / 3600)
    # SwinIR-light: batch 64 of 256^2 on 2 GPUs = 32 per GPU, 32 * 256^2 / (16 * 192^2) times
    # the measured step time.
    per_gpu_pixels = 32 * 256**2 / (16 * 192**2)
    assert train["swinir"].hours == pytest.approx(500_000 / (13.0 / per_gpu_pixels) / 3600)
    assert train["swinir"].gpus == 2 and train["swinir"].batch_per_gpu == 32
    assert train["swinir"].mem_gib == pytest.approx(6.2 * per_gpu_pixels)
    assert train["swinir"].gpu_hours == pytest.approx(6 * 2 * train["swinir"].hours)
    condense = _rows(rows, "condense_image")["1 runs"]
    assert condense.jobs == 800 and condense.hours == pytest.approx(20_000 * 0.0682 / 3600)
    # Teachers needed by Table 1: the extractor (also the baselines' feature teacher) and the
    # up-sampler of the IDC dataset; EDSR and SwinIR up-samplers only for Table 5.
    assert set(_rows(rows, "train_teacher")) == {"swinir", "mambairv2_up"}
    assert set(_rows(plan(paper, tables=["table5"]), "train_teacher")) == {"swinir", "mambairv2_up", "edsr_up",
                                                                           "swinir_up"}


@pytest.mark.parametrize("pack,jobs,gain", [(4, 200, 16.7 / 9.2), (3, 267, 1.0), (8, 100, 16.9 / 9.2)])
def test_packed_condensation_is_planned_per_pack_with_the_measured_gain(paper, pack, jobs, gain):
    """k images per job: ceil(800 / k) jobs, each k images' steps at the instance-steps/s measured
    for the largest pack size not above k (none measured between 1 and 4: no gain assumed at 3)."""
    packed = {**paper, "condense": {**paper["condense"], "pack": pack}}
    rows = plan(packed)
    assert not _rows(rows, "condense_image")
    row = _rows(rows, "condense_pack")["1 runs"]
    assert row.jobs == jobs
    assert row.hours == pytest.approx(pack * 20_000 * 0.0682 / 3600 / gain)
    assert row.limit_h == pytest.approx(pack * paper["condense"]["resources"]["runtime"] / 60)
    single = _rows(plan(paper), "condense_image")["1 runs"]
    assert row.gpu_hours == pytest.approx(single.gpu_hours * math.ceil(800 / pack) * pack / 800 / gain)


def test_paper_config_fits_80gb_gpus(paper):
    """Every training job of the paper config fits one 80 GB GPU per rank (figures or estimates)."""
    rows = plan(paper, tables=sorted(paper["tables"]))
    for row in rows:
        if row.rule in ("train_sr", "train_teacher"):
            assert row.mem_gib is not None and row.mem_gib < 80, (row.what, row.mem_gib)
    text = format_plan(rows)
    assert "does not fit" not in text
    # One GPU with the MambaIRv2 teacher's whole batch would not fit: the check can fire.
    one_gpu = {**paper["teachers"]["mambairv2_up"], "resources": {**paper["teachers"]["mambairv2_up"]["resources"],
                                                                   "gpu": 1}}
    paper_one = {**paper, "teachers": {**paper["teachers"], "mambairv2_up": one_gpu}}
    assert "mambairv2_up: 234 GiB per GPU does not fit 80 GiB" in format_plan(plan(paper_one))


def test_every_figure_names_machine_and_date_and_estimates_say_how():
    table = load_table()
    for entry in table["sr_training"]:
        assert entry["machine"] and entry["date"], entry["name"]
        assert entry["kind"] in ("measured", "estimate")
        if entry["kind"] == "estimate":
            assert "params" in entry["derivation"], entry["name"]
    assert match_figure({"arch": "edsr", "kwargs": {"num_feat": 64, "num_block": 16}}, table)["kind"] == "measured"
    assert match_figure({"arch": "edsr", "kwargs": {"num_feat": 32, "num_block": 4}}, table) is None


def test_cli_prints_the_plan_and_names_a_bad_table():
    ok = subprocess.run([sys.executable, "-m", "idc", "plan", "--configfile", "config/config.yaml"],
                        capture_output=True, text=True, check=True)
    assert "| train_sr | swinir | 6 | 2 |" in ok.stdout and "GPU-days" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "idc", "plan", "--tables", "table9"], capture_output=True, text=True)
    assert bad.returncode == 1 and "table9" in bad.stderr


def test_plan_offers_the_released_weights_of_each_teacher(paper):
    """Training the MambaIRv2 teacher is most of the bill; importing its released checkpoint costs
    no training: the plan names the file and the config key, and totals with and without it."""
    from idc.plan import IMPORT_GPU_HOURS, format_alternatives, weights_alternatives

    rows = plan(paper)
    alts = {a["teacher"]: a for a in weights_alternatives(paper, rows)}
    assert alts["mambairv2_up"]["file"] == "mambairv2_classicSR_Base_x4.pth"
    assert alts["swinir"]["file"] == "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth"
    assert alts["mambairv2_up"]["key"] == "teachers.mambairv2_up.weights"
    teachers = _rows(rows, "train_teacher")
    assert alts["mambairv2_up"]["gpu_hours"] == teachers["mambairv2_up"].gpu_hours > 2000
    text = format_alternatives(rows, list(alts.values()))
    total = sum(r.gpu_hours for r in rows)
    with_weights = total - sum(t.gpu_hours for t in teachers.values()) + 2 * IMPORT_GPU_HOURS
    assert f"total GPU-h: {total:,.0f} training every teacher" in text
    assert f"{with_weights:,.0f} with the released weights" in text
    assert "`teachers.swinir.weights`" in text and "| mambairv2_up | 2,042 | 0 (+0.5 import) |" in text
    # Table 5's teachers have released checkpoints too
    alts5 = {a["teacher"]: a["file"] for a in weights_alternatives(paper, plan(paper, tables=["table5"]))}
    assert alts5["edsr_up"] == "EDSR_Lx4_f256b32_DIV2K_official-76ee1c8f.pth"
    assert alts5["swinir_up"] == "001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth"


def test_a_teacher_with_weights_is_imported_not_trained_in_the_plan(paper):
    teachers = {**paper["teachers"], "mambairv2_up": {**paper["teachers"]["mambairv2_up"], "weights": "m.pth"}}
    rows = plan({**paper, "teachers": teachers})
    assert set(_rows(rows, "train_teacher")) == {"swinir"}
    imported = _rows(rows, "import_teacher")["mambairv2_up"]
    assert imported.gpus == 1 and imported.gpu_hours == 0.5


def test_cli_prints_the_alternative():
    ok = subprocess.run([sys.executable, "-m", "idc", "plan", "--configfile", "config/config.yaml"],
                        capture_output=True, text=True, check=True)
    assert "mambairv2_classicSR_Base_x4.pth" in ok.stdout and "with the released weights" in ok.stdout


def _snakemake_gpus(configfile: str) -> dict[str, tuple[int, set[int]]]:
    """(jobs, GPUs asked) per rule of a dry run, as Snakemake prints the jobs' resources (group
    jobs' members indented)."""
    import re

    from tests.workflow_helpers import planned_jobs, snakemake

    out = snakemake(["-n", "--configfile", configfile, "--printshellcmds"], cwd=PROJECT_ROOT).stdout
    gpus: dict[str, set[int]] = {}
    for rule, block in re.findall(r"\n\s*(?:local)?rule (\w+):\n(.*?)(?=\n\s*\n|\Z)", out, flags=re.S):
        found = re.search(r"resources: .*?\bgpu=(\d+)", block)
        gpus.setdefault(rule, set()).add(int(found.group(1)) if found else 0)
    return {rule: (count, gpus.get(rule, set())) for rule, count in planned_jobs(out).items()}


@pytest.mark.parametrize("configfile", ["config/demo.yaml", "config/verdict.yaml"])
def test_the_plan_counts_and_charges_what_the_workflow_runs(configfile):
    """Per rule, the plan's jobs and GPUs per job are those of Snakemake's own dry run: the demo
    once showed 24 GPU-hours for jobs that all run with gpu=0, and its replicates were missing."""
    if configfile == "config/verdict.yaml" and not (PROJECT_ROOT / "../shared/data/BSD100/HR").is_dir():
        pytest.skip("the verdict config trains on ../shared/data (not on this machine)")
    config = load_config(PROJECT_ROOT / configfile)
    rows = plan(config)
    dry = _snakemake_gpus(configfile)
    for rule in ("train_teacher", "condense_image", "upsample_condensed", "relabel_dataset", "select_baseline",
                 "train_sr", "test_sr"):
        planned = [r for r in rows if r.rule == rule]
        assert sum(r.jobs for r in planned) == dry.get(rule, (0, set()))[0], rule
        assert {r.gpus for r in planned} == dry.get(rule, (0, set()))[1], rule
    if not any(r.gpus for r in rows):
        assert "| 0 | 0.0 GPU-days |" in format_plan(rows)


def test_cli_refuses_a_gpu_memory_that_is_not_a_positive_number():
    for value in ("nan", "-5", "0"):
        proc = subprocess.run([sys.executable, "-m", "idc", "plan", "--configfile", "config/demo.yaml",
                               "--gpu-mem-gib", value], capture_output=True, text=True, cwd=PROJECT_ROOT)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert f"error: --gpu-mem-gib must be a positive number of GiB, got {float(value)}" in proc.stderr


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "config.yaml: a configuration file must hold a mapping (got list)"),
    ("3", "config.yaml: a configuration file must hold a mapping (got int)"),
])
def test_cli_refuses_a_config_that_is_not_a_mapping(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "idc", "plan", "--configfile", str(path)], capture_output=True,
                          text=True, cwd=PROJECT_ROOT)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / message}"


@pytest.mark.parametrize("text, message", [
    ("[1]", "must hold a mapping (got list)"),
    ("{condensation: {}}", "entry sr_training is missing"),
    ("{sr_training: [], condensation: {kind: measured}}", "condensation.ms_per_step is missing or not a"),
    ("{sr_training: [3], condensation: {}}", "sr_training[0] must be a mapping"),
    ("{sr_training: [], condensation: {kind: measured, ms_per_step: 1, scale: s, packing: {instance_steps_per_s:"
     " {4: 2.0}}}}", "condensation.packing.instance_steps_per_s must map pack sizes (1 included)"),
])
def test_cli_refuses_a_malformed_throughput_table(tmp_path, text, message):
    path = tmp_path / "throughput.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "idc", "plan", "--configfile", "config/demo.yaml", "--throughput",
                           str(path)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"error: throughput table {path}" in proc.stderr and message in proc.stderr
