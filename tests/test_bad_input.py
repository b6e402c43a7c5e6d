"""Bad input to the workflow: a one-line error naming the culprit before long work starts, and no
partial outputs left behind."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.workflow_helpers import copy_workflow, snakemake


def _folder_config(work, folder, **changes):
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["run"] = "bad"
    config["data"]["trainset"] = {"source": "folder", "folder": str(folder)}
    for key, value in changes.items():
        config[key] = value
    path = work / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _good_images(folder, n=2, size=(96, 128)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


CASES = {
    "corrupt png": (lambda f: (f / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "broken.png"),
    "non-image file": (lambda f: (f / "notes.png").write_text("not an image"), "notes.png"),
    "image smaller than a crop": (
        lambda f: Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(f / "tiny.png"),
        "tiny.png",
    ),
    "16-bit png": (
        lambda f: Image.fromarray(np.full((96, 96), 40000, np.uint16)).save(f / "deep.png"),
        "deep.png",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_training_image_fails_fast_naming_the_file(tmp_path, case):
    make_bad, culprit = CASES[case]
    work = copy_workflow(tmp_path / "wf")
    folder = tmp_path / "photos"
    _good_images(folder)
    make_bad(folder)
    config = _folder_config(work, folder)
    proc = snakemake(["results/bad/data/train_patches.h5", "--cores", "1", "--configfile", str(config)],
                     cwd=work, check=False, timeout=300)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if culprit in line]
    assert errors, (proc.stdout + proc.stderr)[-3000:]
    store_dir = work / "results" / "bad" / "data"
    assert not list(store_dir.glob("*.h5*")) if store_dir.exists() else True  # nothing half-written


def test_missing_training_folder_is_a_one_line_error(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = _folder_config(work, tmp_path / "nowhere")
    proc = snakemake(["-n", "--configfile", str(config)], cwd=work, check=False)
    assert proc.returncode != 0
    assert "error: config key data.trainset.folder" in proc.stderr + proc.stdout
    assert "nowhere" in proc.stderr + proc.stdout
