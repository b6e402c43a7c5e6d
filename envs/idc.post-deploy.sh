#!/usr/bin/env bash
# Snakemake runs this once after creating the conda environment of envs/idc.yaml
# (--software-deployment-method conda; "post-deploy script": the env file's name with
# .post-deploy.sh), inside the activated environment, from Snakemake's working directory.
#
# It installs the project itself into the environment. A pip line `-e ..` in the env file cannot do
# that: Snakemake copies the env file to .snakemake/conda/<hash>.yaml (or --conda-prefix) before
# `conda env create`, and conda runs pip from the folder of that copy, so a relative path would
# name a folder below .snakemake/, not the project.
#
# The project is the working directory (where `snakemake` runs: the Snakefile, config/ and
# profiles/ are found there too), or IDC_WORKFLOW_ROOT when set. --no-deps: the environment's
# conda packages (PyTorch from the pytorch channel) already satisfy the dependencies; pip must not
# replace them with PyPI wheels.
set -euo pipefail
root="${IDC_WORKFLOW_ROOT:-$PWD}"
if ! grep -qs '^name = "idc-workflow"' "$root/pyproject.toml"; then
  echo "envs/idc.post-deploy.sh: $root is not the idc-workflow project (no pyproject.toml naming it);" \
       "run snakemake from the project folder or set IDC_WORKFLOW_ROOT" >&2
  exit 1
fi
python -m pip install --no-deps --editable "$root"
python -c "import idc; print('idc-workflow', idc.__version__, 'installed from', '$root')"
