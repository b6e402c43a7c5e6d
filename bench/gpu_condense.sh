#!/usr/bin/env bash
# Condensation checks on a GPU machine (PyTorch preinstalled, nothing downloaded), ~5 minutes:
# the GPU smoke test of condense_instance and the paper-scale step benchmark, JSON on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo '{"condense_instance":'
timeout 240 python bench/gpu_condense_check.py "${1:-200}"
echo ',"condense_step":'
timeout 300 python bench/condense_step.py --scale paper --device cuda --tf32 ${COMPILE:+--compile} --json
echo '}'
