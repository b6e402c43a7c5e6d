#!/usr/bin/env bash
# The test command: sets itself up, then runs the whole suite (extra pytest arguments pass through,
# e.g. `bash scripts/test.sh -m "not slow"` for the fast subset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m pytest "$@"
