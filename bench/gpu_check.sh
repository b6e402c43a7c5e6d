#!/usr/bin/env bash
# One-go GPU check (about 6 minutes by default on an H100/H200 with PyTorch preinstalled, nothing downloaded):
# the GPU-marked tests, the IDC step benchmark at the paper scale (plain vs fast paths, TF32),
# condense_instance at the paper scale (determinism, resume, packing), SR training throughput,
# the selective scan and the selection baselines on CUDA. Each part writes JSON under $OUT (or
# ./gpu-check) and a missing or failing part does not stop the others; a summary JSON ends it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
status=()
# Default: SR training throughput first, then the condensation performance parts (time limits
# adding up to about 6.5 minutes); torch.compile, the part that once hung, runs only by name or
# with PARTS=all, which adds the selective scan and the selection baselines (~1 min more).
PARTS=${PARTS:-sr_train tests condense_step condense_instance}
[[ "$PARTS" == all ]] && PARTS="sr_train tests condense_step condense_instance scan select condense_compiled"
part() {  # part NAME SECONDS COMMAND...: run with a time limit, record the exit code
  local name=$1 limit=$2; shift 2
  [[ " $PARTS " == *" $name "* ]] || return 0
  local t0=$SECONDS
  echo "=== $name" >&2
  # -k: a part that catches SIGTERM and waits for a step boundary (a condensation still compiling
  # never reaches one) is killed 10 s after its limit, so one part cannot take the whole check.
  timeout -k 10 "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  status+=("\"$name\": {\"rc\": $rc, \"seconds\": $((SECONDS - t0))}")
  tail -n 3 "$OUT/$name.err" >&2
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
$PY -c "import torch; print(torch.__version__, torch.version.cuda)" >> "$OUT/gpu.txt" 2>&1
part sr_train 70 $PY bench/gpu_sr_check.py --steps 25 --out "$OUT/sr_train.json"
part tests 45 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_scan.py tests/test_select_gpu.py tests/test_sr_train.py tests/test_archs_attention.py tests/test_condense_gpu_switches.py
part condense_step 60 $PY bench/condense_step.py --scale paper --device cuda --tf32 --fused-attention --freq-reuse 10 --json
part condense_instance ${CONDENSE_SECONDS:-130} $PY bench/gpu_condense_check.py 100
part scan 25 $PY bench/bench_scan.py --device cuda --json "$OUT/scan.json"
part select 45 $PY bench/bench_select.py --devices cuda --json "$OUT/select.json"
# torch.compile with CUDA graphs (reduce-overhead) of the SDPA extractor with the whole GPU switch
# set, single instance + pack of 4 (does packing gain once the per-instance kernels are fused?).
part condense_compiled 65 $PY bench/gpu_condense_check.py 100 --compile-mode reduce-overhead --fused-attention --gpu-set
[[ -f "$OUT/tests.out" ]] && tail -n 2 "$OUT/tests.out" >&2
status_json=$(IFS=,; echo "{${status[*]}}")
$PY bench/gpu_summary.py "$OUT" "$status_json" | tee "$OUT/summary.json"
# Everything in one archive as well, where ARCHIVE names one.
if [[ -n "${ARCHIVE:-}" ]]; then tar -czf "$ARCHIVE" -C "$OUT" .; fi
