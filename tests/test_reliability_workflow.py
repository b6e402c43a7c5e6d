"""A `method: folder` dataset depends on its files, not on its folder's mtime (issue 23, class 7)."""

from __future__ import annotations

import os

import numpy as np
import yaml
from PIL import Image

from tests.workflow_helpers import copy_workflow, planned_jobs, snakemake


def test_rewriting_an_image_of_a_folder_dataset_reruns_its_import(tmp_path):
    """Rewriting HR/a.png left the folder's mtime unchanged, and `snakemake -n` said "Nothing to
    be done"; the image files are now inputs of the import."""
    work = copy_workflow(tmp_path / "wf")
    hr = tmp_path / "ext" / "HR"
    hr.mkdir(parents=True)
    for name, value in (("a.png", 0), ("b.png", 255)):
        Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(hr / name)
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["datasets"]["ext"] = {"method": "folder", "hr": str(hr)}
    configfile = tmp_path / "changed.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = "results/demo/datasets/ext.h5"
    args = [target, "--cores", "1", "--configfile", str(configfile)]
    snakemake(args, cwd=work, timeout=600)
    assert "import_folder" not in planned_jobs(snakemake(["-n", *args], cwd=work).stdout)
    folder_mtime = os.stat(hr).st_mtime_ns
    image = hr / "a.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(image)
    later = os.stat(work / target).st_mtime_ns + 10**9
    os.utime(image, ns=(later, later))
    os.utime(hr, ns=(folder_mtime, folder_mtime))  # as after an in-place rewrite of the file
    assert planned_jobs(snakemake(["-n", *args], cwd=work).stdout).get("import_folder") == 1
