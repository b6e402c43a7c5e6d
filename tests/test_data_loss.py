"""No configuration or input deletes data outside the run or a good output: the four cases that
once did, run for real inside a temporary folder, with every file around them fingerprinted before
and compared after."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.workflow_helpers import _env, copy_workflow, run_idc, snakemake


def _fingerprint(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `root` (and '<dir>' for folders), except the
    paths under any of `skip` (relative prefixes: the run's own results and Snakemake's state)."""
    prints = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        prints[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def _photos(folder: Path, names=("a.png", "b.png"), size=(96, 128)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _config(work: Path, **changes) -> Path:
    """demo.yaml with run 'bad', trained on a folder of photos given in `changes`."""
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["run"] = "bad"
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = work / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if all(n in line for n in needles)]
    assert lines, output[-3000:]
    return lines[0]


def test_test_set_key_cannot_escape_the_run(tmp_path):
    """A test-set key `../../../../../victim` once made prepare_testset delete and rewrite
    tmp_path/victim; now planning stops on the key and nothing outside the run changes."""
    work = copy_workflow(tmp_path / "wf")
    victim = _photos(tmp_path / "victim", names=("keep.png",))
    hr = _photos(tmp_path / "bench" / "HR")
    escape = "../../../../../victim"  # results/bad/data/testsets/<key> resolves to tmp_path/victim
    assert (work / "results/bad/data/testsets" / escape).resolve() == victim.resolve()
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["run"] = "bad"
    config["data"]["testsets"][escape] = {"source": "folder", "hr": str(hr)}
    config["tables"]["table1"]["testsets"].append(escape)
    (work / "bad.yaml").write_text(yaml.safe_dump(config))
    before = _fingerprint(tmp_path, skip=("wf/.snakemake",))
    proc = snakemake(["--cores", "1", "--configfile", str(work / "bad.yaml")], cwd=work, check=False, timeout=300)
    _one_line_error(proc, "config key data.testsets", "victim")
    assert _fingerprint(tmp_path, skip=("wf/.snakemake",)) == before
    assert not (work / "results").exists()


@pytest.mark.parametrize("run", ["..", "x\n"])
def test_run_name_cannot_escape_results(tmp_path, run):
    """`run: ..` made results/.. the project folder; a trailing newline passed the `$` pattern.
    (More run names, unit level: tests/test_config.py.)"""
    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    config["run"] = run
    (work / "bad.yaml").write_text(yaml.safe_dump(config))
    before = _fingerprint(tmp_path, skip=("wf/.snakemake",))
    proc = snakemake(["-n", "--configfile", str(work / "bad.yaml")], cwd=work, check=False, timeout=120)
    _one_line_error(proc, "config key run")
    assert _fingerprint(tmp_path, skip=("wf/.snakemake",)) == before


def _prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idc", "prepare-testset", *args],
                          capture_output=True, text=True, env=_env(), timeout=120)


def test_prepare_testset_never_deletes_a_folder_it_did_not_write(tmp_path):
    originals = _photos(tmp_path / "Set2" / "HR")
    user_folder = _photos(tmp_path / "mine", names=("holiday.png",))
    before = _fingerprint(tmp_path)
    cases = {
        "output equals input": (str(originals), "overlaps the input folder"),
        "output inside input": (str(originals / "prepared"), "overlaps the input folder"),
        "input inside output": (str(tmp_path / "Set2"), "overlaps the input folder"),
        "a folder of the user": (str(user_folder), "not written by prepare-testset"),
    }
    for case, (out_dir, reason) in cases.items():
        proc = _prepare("Set2", out_dir, "--hr-dir", str(originals))
        line = _one_line_error(proc, reason)
        assert line.startswith("error: test set Set2"), (case, line)
        assert _fingerprint(tmp_path) == before, case
    # A folder the tool wrote is replaced (a rerun), and only that one.
    out = tmp_path / "prepared" / "Set2"
    assert _prepare("Set2", str(out), "--hr-dir", str(originals)).returncode == 0
    first = _fingerprint(out)
    assert _prepare("Set2", str(out), "--hr-dir", str(originals)).returncode == 0
    assert _fingerprint(out) == first and sorted(p.name for p in (out / "HR").iterdir()) == ["a.png", "b.png"]
    assert {k: v for k, v in _fingerprint(tmp_path).items() if not k.startswith("prepared")} == before


def test_duplicate_image_stems_are_refused_naming_both_files(tmp_path):
    """`b.png` + `b.jpg` once gave one image twice and dropped the other; now both the workflow
    (before planning) and prepare-testset stop with one line naming the two files."""
    photos = _photos(tmp_path / "photos", names=("a.png", "b.png"))
    Image.fromarray(np.zeros((96, 128, 3), np.uint8)).save(photos / "b.jpg")
    work = copy_workflow(tmp_path / "wf")
    config = _config(work, **{"data.trainset": {"source": "folder", "folder": str(photos)}})
    before = _fingerprint(tmp_path, skip=("wf/.snakemake", "wf/bad.yaml"))
    proc = snakemake(["-n", "--configfile", str(config)], cwd=work, check=False, timeout=120)
    _one_line_error(proc, "b.png", "b.jpg", "same name")
    proc = _prepare("Dup", str(tmp_path / "out"), "--hr-dir", str(photos))
    _one_line_error(proc, "b.png", "b.jpg", "same name")
    assert _fingerprint(tmp_path, skip=("wf/.snakemake", "wf/bad.yaml")) == before
    # names differing only in case are one image on a case-insensitive file system
    from idc.data.images import list_images

    (photos / "b.jpg").rename(photos / "B.png")
    with pytest.raises(ValueError, match=r"same name .*: B.png and b.png"):
        list_images(photos)


BAD_CHANGES = [
    ({"data.crop.hr_size": 66}, "data.crop.hr_size"),
    ({"data.crop.step": 30}, "data.crop.step"),
    ({"scale": 2}, "kwargs.upscale"),
    ({"datasets.random.ratio": 1e-05}, "datasets.random.ratio"),
]


def test_bad_value_stops_before_the_patch_store_is_touched(tmp_path):
    """A crop size that is not a multiple of the scale once passed validation; Snakemake removed
    the existing patch store (hours at paper scale) before the job failed. Each cross-field rule
    the jobs rely on is now checked at planning time: the store survives byte for byte."""
    photos = _photos(tmp_path / "photos")
    work = copy_workflow(tmp_path / "wf")
    trainset = {"data.trainset": {"source": "folder", "folder": str(photos)}}
    good = _config(work, **trainset)
    snakemake(["results/bad/data/train_patches.h5", "--cores", "1", "--configfile", str(good)], cwd=work, timeout=300)
    assert (work / "results/bad/data/train_patches.h5").is_file()
    before = _fingerprint(tmp_path, skip=("wf/.snakemake", "wf/bad.yaml"))
    for change, key in BAD_CHANGES:
        bad = _config(work, **trainset, **change)
        proc = snakemake(["results/bad/data/train_patches.h5", "--cores", "1", "--configfile", str(bad)],
                         cwd=work, check=False, timeout=300)
        _one_line_error(proc, "error: config key", key)
        assert _fingerprint(tmp_path, skip=("wf/.snakemake", "wf/bad.yaml")) == before, key



def test_crop_and_import_never_replace_an_input_or_a_file_they_did_not_write(tmp_path):
    """`crop gc/HR gc/HR/a.png` once replaced the image with an HDF5 file (and import-folder did
    the same); now an output inside or equal to an input, or any file the tool did not write, is
    refused with one line, and every file around stays byte for byte."""
    hr = _photos(tmp_path / "gc" / "HR")
    lr = _photos(tmp_path / "gc" / "LR", size=(24, 32))
    meta = tmp_path / "gc" / "meta_info.txt"
    meta.write_text("a.png (96,128,3)\nb.png (96,128,3)\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("precious\n")
    crop = ("--hr-size", "32", "--step", "32", "--workers", "1")
    cases = {
        "crop onto an HR image": (("crop", str(hr), str(hr / "a.png"), *crop), "inside the input folder"),
        "crop into the HR folder": (("crop", str(hr), str(hr / "new.h5"), *crop), "inside the input folder"),
        "crop into the LR folder": (("crop", str(hr), str(lr / "s.h5"), "--lr-dir", str(lr), *crop),
                                    "inside the input folder"),
        "crop onto a user's file": (("crop", str(hr), str(victim / "notes.txt"), *crop), "not written by idc-workflow"),
        "crop onto a folder": (("crop", str(hr), str(victim), *crop), "is a folder"),
        "import onto an HR image": (("import-folder", str(hr), str(hr / "b.png"), "--lr-dir", str(lr), *crop[:4]),
                                    "inside the input folder"),
        "import onto the meta_info": (("import-folder", str(hr), str(meta), "--meta-info", str(meta), *crop[:4]),
                                      "is the input file"),
        "import onto a user's file": (("import-folder", str(hr), str(victim / "notes.txt"), *crop[:4]),
                                      "not written by idc-workflow"),
    }
    before = _fingerprint(tmp_path)
    for case, (args, reason) in cases.items():
        line = _one_line_error(run_idc(*args), reason)
        assert line.startswith("error: patch store"), (case, line)
        assert _fingerprint(tmp_path) == before, case
    # The tool's own earlier output is replaced (a rerun), by either command.
    out = tmp_path / "out" / "s.h5"
    for command in ("crop", "import-folder", "crop"):
        proc = run_idc(command, str(hr), str(out), *crop[:4])
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert {k: v for k, v in _fingerprint(tmp_path).items() if not k.startswith("out")} == before


def test_export_never_deletes_or_replaces_what_it_did_not_write(tmp_path):
    """`export s5.h5 victim` once deleted a user's folder, `export self/s5.h5 self` the input
    store, and an existing file became a hidden `.name.old-<pid>`; now only the command's own
    earlier export is replaced, anything else is refused with one line and stays byte for byte."""
    from idc.data.store import write_patch_store

    rng = np.random.default_rng(0)
    store = tmp_path / "self" / "s5.h5"
    store.parent.mkdir()
    write_patch_store(store, rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8),
                      rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), np.arange(5),
                      np.zeros((5, 2), int), scale=4, source="test", seed=0)
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "notes.txt").write_text("precious\n")
    (victim / "sub" / "y.txt").write_text("x\n")
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "link").symlink_to(victim, target_is_directory=True)
    faked = tmp_path / "faked"
    faked.mkdir()
    (faked / "dataset_card.yaml").write_text("created_by: someone else\nsha256: {}\n")
    mine = tmp_path / "mine"  # an earlier export, then changed by its user
    assert run_idc("export", str(store), str(mine)).returncode == 0
    (mine / "HR" / "my-notes.txt").write_text("kept\n")
    edited = tmp_path / "edited"
    assert run_idc("export", str(store), str(edited)).returncode == 0
    with open(edited / "train_basicsr_EDSR_x4.yml", "a") as fh:
        fh.write("# my learning rate\n")
    cases = {
        "a user's folder": (victim, "no readable dataset_card.yaml"),
        "the folder holding the input": (store.parent, "is or holds the input"),
        "the input store itself": (store, "is or holds the input"),
        "a file": (tmp_path / "file.txt", "exists and is not a folder"),
        "a link": (tmp_path / "link", "symbolic link"),
        "a card not written by export": (faked, "not written by `python -m idc export`"),
        "an export holding a user's file": (mine, "HR/my-notes.txt is not one of the files its card lists"),
        "an export with an edited option file": (edited, "train_basicsr_EDSR_x4.yml was changed since the export"),
    }
    before = _fingerprint(tmp_path)
    for case, (out, reason) in cases.items():
        line = _one_line_error(run_idc("export", str(store), str(out)), reason)
        assert line.startswith("error: export:") and str(out) in line, (case, line)
        assert _fingerprint(tmp_path) == before, case
    # The command's own earlier export is replaced (a rerun), and nothing else changes.
    out = tmp_path / "exports" / "s5"
    for lr_names in ("suffix", "same"):
        proc = run_idc("export", str(store), str(out), "--lr-names", lr_names)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (out / "LR_bicubic" / "X4").iterdir()) == sorted(p.name for p in (out / "HR").iterdir())
    assert {k: v for k, v in _fingerprint(tmp_path).items() if not k.startswith("exports")} == before
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["s5"]  # no temporary left
