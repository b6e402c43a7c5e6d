#!/usr/bin/env bash
# Condensation checks on a GPU machine (PyTorch preinstalled, nothing downloaded), ~5 minutes:
# condense_instance at the paper scale (fast, TF32, plain, determinism, resume, 4 packed
# instances) and the step benchmark with its breakdown; JSON on stdout.
# COMPILE=reduce-overhead (or default) adds the compiled-extractor runs (compilation takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo '{"condense_instance":'
timeout 240 python bench/gpu_condense_check.py "${1:-200}"
echo ',"condense_step":'
timeout 200 python bench/condense_step.py --scale paper --device cuda --tf32 --json
if [[ -n "${COMPILE:-}" ]]; then
  echo ',"condense_instance_compiled":'
  timeout 400 python bench/gpu_condense_check.py "${1:-200}" --compile-mode "$COMPILE"
fi
echo '}'
