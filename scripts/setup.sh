#!/usr/bin/env bash
# Create .venv (if missing) and install the project with everything the workflow and tests need.
# torch is pinned to 2.13.0 only when no torch is installed yet, so a user's own CUDA build stays.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0"
fi
python -m pip install -q -e ".[workflow,dev]"
