#!/usr/bin/env bash
# The demo: sets itself up, then runs the whole DAG on the embedded demo image set on the CPU.
# Tables land in results/demo/tables/. Extra arguments go to snakemake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec snakemake --cores "${CORES:-2}" "$@"
