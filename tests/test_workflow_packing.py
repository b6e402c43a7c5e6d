"""`condense.pack`: k training images condensed in one job and one loop, each image's files then
copied to the paths a job of its own writes, so that everything downstream is unchanged."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from idc.workflow.datasets import condensation_datasets
from idc.workflow.run import load_run
from tests.conftest import PROJECT_ROOT
from tests.workflow_helpers import copy_workflow, planned_jobs, snakemake


def _demo_overlay(tmp_path: Path, pack: int, steps: int | None = None) -> Path:
    """The demo's config with `condense.pack` (and the condensation's steps) set."""
    config = yaml.safe_load((PROJECT_ROOT / "config" / "demo.yaml").read_text())
    config["condense"]["pack"] = pack
    if steps is not None:
        config["condense"]["params"]["steps"] = steps
    path = tmp_path / f"pack{pack}-steps{steps}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _runs(config_path: Path) -> dict[str, list[str]]:
    """Condensation run -> its images, as the workflow wires them."""
    config = yaml.safe_load(config_path.read_text())
    run = load_run(config)
    keys = {run.condensations.key(d) for d in condensation_datasets(config["datasets"])}
    return {k: run.condensations.run_images(k) for k in sorted(keys)}


def test_packing_plans_one_job_per_pack_and_keeps_one_file_per_image(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    single = planned_jobs(snakemake(["-n", "--configfile", str(_demo_overlay(tmp_path, 1))], cwd=work).stdout)
    packed_config = _demo_overlay(tmp_path, 3)
    packed = planned_jobs(snakemake(["-n", "--configfile", str(packed_config)], cwd=work).stdout)
    runs = _runs(packed_config)
    assert "condense_pack" not in single and "unpack_condensed" not in single
    assert "condense_image" not in packed
    assert packed["unpack_condensed"] == single["condense_image"] == sum(len(v) for v in runs.values())
    assert packed["condense_pack"] == sum(math.ceil(len(v) / 3) for v in runs.values())
    # everything after the condensation is planned as before
    for rule in ("upsample_condensed", "train_sr", "test_sr", "make_verdict"):
        assert packed[rule] == single[rule]


# Packed and single runs differ by the rounding of the batched extractor, which the optimisation
# amplifies. Measured on the demo (CPU, float32): the images of one synthetic patch differ by 6e-8
# after one step, 7e-5 after two, 3e-4 after 6 and 5e-2 after the demo's 200 (the others are
# bit-identical); in float64 by 1e-16 after one step and 1e-5 after 200 (docs/hpc.md). So the
# workflow comparison runs one step, far below its tolerance; that a pack changes nothing else over
# whole runs is `test_a_pack_is_its_single_runs_bit_for_bit_when_features_ignore_the_batch`
# (tests/test_condense_stage.py).
COMPARED_STEPS = 1


@pytest.mark.slow
def test_packed_jobs_write_what_single_jobs_write(tmp_path):
    """The demo's condensations single, then packed 2 per job from the same store and extractor
    (one step each): every image's patches equal the single job's up to float rounding, with its
    seed and share, and every file a single job writes is there."""
    work = copy_workflow(tmp_path / "wf")
    results = Path("results") / "demo"
    single_config = _demo_overlay(tmp_path, 1, steps=COMPARED_STEPS)
    packed_config = _demo_overlay(tmp_path, 2, steps=COMPARED_STEPS)
    ckey, images = next(iter(_runs(packed_config).items()))
    condensed = work / results / "condense" / ckey
    targets = [str(results / "condense" / ckey / f"{image}.npy") for image in images]
    snakemake([*targets, "--cores", "2", "--configfile", str(single_config)], cwd=work)
    single = tmp_path / "single"
    shutil.move(condensed, single)
    proc = snakemake([*targets, "--cores", "2", "--configfile", str(packed_config)], cwd=work)
    jobs = planned_jobs(proc.stdout + proc.stderr)  # a real run prints its job stats on stderr
    assert jobs["condense_pack"] == math.ceil(len(images) / 2) and jobs["unpack_condensed"] == len(images)
    assert "train_teacher" not in jobs and "crop_patches" not in jobs
    for image in images:
        packed, alone = np.load(condensed / f"{image}.npy"), np.load(single / f"{image}.npy")
        assert packed.shape == alone.shape and np.abs(packed - alone).max() < 1e-4, image
        log = json.loads((condensed / f"{image}.json").read_text())
        alone_log = json.loads((single / f"{image}.json").read_text())
        assert log["instance_seed"] == alone_log["instance_seed"] and len(log["packed_with"]) in (1, 2)
        assert log["n_synthetic"] == alone_log["n_synthetic"] and log["stopping"]["end_step"] == COMPARED_STEPS
        assert (condensed / f"{image}.snapshots.npz").is_file()
