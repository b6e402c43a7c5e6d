"""The conda environment of the rules (envs/idc.yaml + envs/idc.post-deploy.sh), checked without a
conda installer (none here): Snakemake copies the env file to .snakemake/conda/<hash>.yaml before
`conda env create --file <copy>` (snakemake/deployment/conda.py, create_env), and conda runs pip
from the folder of that file, so a relative pip path (`-e ..`) would name a folder below
.snakemake/. The project is installed by the post-deploy script instead, which Snakemake finds
next to the env file (same name, `.post-deploy.sh`) and runs from its working directory."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

ENV = PROJECT_ROOT / "envs" / "idc.yaml"
POST_DEPLOY = PROJECT_ROOT / "envs" / "idc.post-deploy.sh"
tomllib = pytest.importorskip("tomllib")
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda package name where they differ


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower()


def test_env_file_has_no_path_that_would_resolve_against_the_copy():
    env = yaml.safe_load(ENV.read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep.get("pip", []):
                assert not re.match(r"(-e\s+|--editable\s+)?(\.|/|file:)", spec), spec


def test_env_has_every_dependency_of_the_package():
    """The post-deploy script installs the project with --no-deps: conda must bring them all."""
    env = yaml.safe_load(ENV.read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = {_name(d) for d in project if CONDA_NAMES.get(_name(d), _name(d)) not in conda}
    assert not missing, missing


def test_post_deploy_script_is_where_snakemake_looks():
    # snakemake Env.post_deploy_file: the env file with .yaml/.yml replaced by .post-deploy.sh
    assert POST_DEPLOY == ENV.with_name(ENV.name.removesuffix(".yaml") + ".post-deploy.sh")
    assert POST_DEPLOY.read_text().startswith("#!/usr/bin/env bash\n")


def _fake_python(tmp_path: Path) -> dict[str, str]:
    """PATH with a `python` that records its arguments instead of installing anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    (bin_dir / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "IDC_WORKFLOW_ROOT"}
    return dict(env, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_post_deploy_installs_the_project_from_the_working_directory(tmp_path):
    env = _fake_python(tmp_path)
    proc = subprocess.run(["bash", str(POST_DEPLOY)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0] == f"-m pip install --no-deps --editable {PROJECT_ROOT}"
    # IDC_WORKFLOW_ROOT names the project when snakemake runs elsewhere
    (tmp_path / "calls.txt").unlink()
    proc = subprocess.run(["bash", str(POST_DEPLOY)], cwd=tmp_path, env=dict(env, IDC_WORKFLOW_ROOT=str(PROJECT_ROOT)),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and (tmp_path / "calls.txt").read_text().startswith(
        f"-m pip install --no-deps --editable {PROJECT_ROOT}")


def test_post_deploy_refuses_a_folder_that_is_not_the_project(tmp_path):
    env = _fake_python(tmp_path)
    proc = subprocess.run(["bash", str(POST_DEPLOY)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "is not the idc-workflow project" in proc.stderr
    assert not (tmp_path / "calls.txt").exists()
