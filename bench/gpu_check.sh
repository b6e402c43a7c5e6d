#!/usr/bin/env bash
# One-go device check of the SR training and condensation performance paths.
#
#   bash bench/gpu_check.sh                 # on a GPU: paper scale, about 6 minutes on an H100/H200
#   bash bench/gpu_check.sh --device cpu    # a smoke run of every part at toy sizes (~2 min, 2 cores)
#
# With PyTorch preinstalled and nothing downloaded. Parts, most valuable first, each under a hard
# time limit (`timeout -k`: SIGTERM at the limit, SIGKILL 10 s later), a missing or failing part
# not stopping the others:
#   sr_train           SR training throughput of EDSR, SwinIR, MambaIRv2 light x4; resume check
#   tests              the GPU-marked tests (skipped on a CPU)
#   condense_step      the IDC step benchmark: plain vs fast paths, TF32, fused attention
#   extractor          the extractor's forward + backward per patch at 256/16/512 patches along each
#                      attention and precision path: time, memory, features vs float32
#   profile            torch.profiler tables (top 15 kernels by self device time; by self CPU time
#                      on a CPU) of one condensation step and one SR training step per architecture
#   condense_instance  condense_instance along every execution path (determinism, resume, packing)
#   scan, select       the selective scan and the selection baselines        (PARTS=all on a GPU)
#   condense_compiled  torch.compile with CUDA graphs (reduce-overhead) and the GPU switch set,
#                      single and packed, each in a child process killed at the part's deadline
#                      (on a CPU: mode default, without CUDA graphs)                  (PARTS=all)
# Default PARTS on a GPU: sr_train tests condense_step extractor profile condense_instance (limits adding up
# to about 6 minutes); PARTS=all adds the rest (~2 min more); with --device cpu every part runs.
# PARTS="a b" runs those only.
#
# Output under $OUT (default ./gpu-check): per part <part>.jsonl, one JSON line per measured path
# written as it ends (a part stopped at its limit keeps what it measured; CUDA-only paths on a CPU
# are lines with "status": "skipped"), <part>.out and <part>.err; profile_<path>.txt (the profiler
# tables); gpu.txt; summary.json (bench/gpu_summary.py: per part its exit code, the paths finished,
# skipped, failed and unfinished, and the headline figures). ARCHIVE=file.tgz packs it all.
# CONDENSE_SECONDS overrides condense_instance's limit.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) DEVICE=${2:-}; shift 2 || shift ;;
    --device=*) DEVICE=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $DEVICE == cuda || $DEVICE == cpu ]] || { echo "gpu_check.sh: --device must be cuda or cpu" >&2; exit 2; }
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
ALL="sr_train tests condense_step extractor profile condense_instance scan select condense_compiled"
if [[ $DEVICE == cuda ]]; then
  PARTS=${PARTS:-sr_train tests condense_step extractor profile condense_instance}
  # Paper scale. Limits of the default parts: 70 + 45 + 55 + 50 + 40 + 90 s = 350 s.
  SR=(--steps 25) STEP=(--scale paper --device cuda) EXTRACTOR=(--scale paper --device cuda) PROF=(--device cuda)
  INSTANCE=(100)
  SCAN=(--device cuda) SELECT=(--devices cuda) COMPILED=(100 --compile-mode reduce-overhead --fused-attention --gpu-set)
  L_SR=70 L_TESTS=45 L_STEP=55 L_EXTRACTOR=50 L_PROFILE=40 L_INSTANCE=${CONDENSE_SECONDS:-90} L_SCAN=25 L_SELECT=45
  L_COMPILED=65
else
  PARTS=${PARTS:-all}
  # Toy sizes. The limits only bound a hung part: the whole run takes about 2 minutes on 2 cores,
  # most of it compiling (torch inductor's C++ kernels; faster once its cache is warm).
  SR=(--device cpu --scale cpu) STEP=(--scale cpu --device cpu --extractor swinir_toy) PROF=(--device cpu --scale cpu)
  EXTRACTOR=(--scale cpu --device cpu)
  INSTANCE=(--device cpu --scale cpu) SCAN=(--device cpu --scale cpu) SELECT=(--scale cpu --devices cpu)
  # CUDA graphs (reduce-overhead) and TF32 (the GPU switch set) need CUDA: compiled in mode default.
  COMPILED=(--device cpu --scale cpu --compile-mode default --fused-attention)
  L_SR=90 L_TESTS=60 L_STEP=60 L_EXTRACTOR=60 L_PROFILE=60 L_INSTANCE=${CONDENSE_SECONDS:-120} L_SCAN=30 L_SELECT=30 L_COMPILED=180
fi
[[ "$PARTS" == all ]] && PARTS=$ALL
status=()
part() {  # part NAME SECONDS COMMAND...: run with a time limit, record the exit code
  local name=$1 limit=$2; shift 2
  [[ " $PARTS " == *" $name "* ]] || return 0
  local t0=$SECONDS
  echo "=== $name (limit $limit s)" >&2
  # -k: a part that catches SIGTERM and waits for a step boundary (a condensation still compiling
  # never reaches one) is killed 10 s after its limit, so one part cannot take the whole check.
  timeout -k 10 "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  status+=("\"$name\": {\"rc\": $rc, \"seconds\": $((SECONDS - t0)), \"limit\": $limit}")
  tail -n 3 "$OUT/$name.err" >&2
}
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
else
  echo "cpu ($(nproc) cores)" > "$OUT/gpu.txt"
fi
$PY -c "import torch; print(torch.__version__, torch.version.cuda)" >> "$OUT/gpu.txt" 2>&1
part sr_train "$L_SR" $PY bench/gpu_sr_check.py "${SR[@]}" --jsonl "$OUT/sr_train.jsonl"
part tests "$L_TESTS" $PY -m pytest -q -p no:cacheprovider -p bench.pytest_lines --lines-out "$OUT/tests.jsonl" -m gpu \
  tests/test_scan.py tests/test_select_gpu.py tests/test_sr_train.py tests/test_archs_attention.py tests/test_condense_gpu_switches.py
part condense_step "$L_STEP" $PY bench/condense_step.py "${STEP[@]}" --tf32 --fused-attention --freq-reuse 10 --json \
  --jsonl "$OUT/condense_step.jsonl"
part extractor "$L_EXTRACTOR" $PY bench/extractor_step.py "${EXTRACTOR[@]}" --jsonl "$OUT/extractor.jsonl"
part profile "$L_PROFILE" $PY bench/gpu_profile.py "${PROF[@]}" --out-dir "$OUT" --jsonl "$OUT/profile.jsonl"
part condense_instance "$L_INSTANCE" $PY bench/gpu_condense_check.py "${INSTANCE[@]}" --jsonl "$OUT/condense_instance.jsonl"
part scan "$L_SCAN" $PY bench/bench_scan.py "${SCAN[@]}" --json "$OUT/scan.json" --jsonl "$OUT/scan.jsonl"
part select "$L_SELECT" $PY bench/bench_select.py "${SELECT[@]}" --json "$OUT/select.json" --jsonl "$OUT/select.jsonl"
# torch.compile with CUDA graphs (reduce-overhead) of the SDPA extractor with the whole GPU switch
# set, single instance + pack of 4 (does packing gain once the per-instance kernels are fused?).
# Each compiled path runs in a child process killed at --deadline, 10 s before the part's limit,
# so the part records {"status": "timeout"} for it instead of hanging in compilation.
part condense_compiled "$L_COMPILED" $PY bench/gpu_condense_check.py "${COMPILED[@]}" --deadline $((L_COMPILED - 10)) \
  --jsonl "$OUT/condense_compiled.jsonl"
[[ -f "$OUT/tests.out" ]] && tail -n 2 "$OUT/tests.out" >&2
status_json=$(IFS=,; echo "{${status[*]}}")
$PY bench/gpu_summary.py "$OUT" "$status_json" > "$OUT/summary.json" || exit 1
cat "$OUT/summary.json"
# Everything in one archive as well, where ARCHIVE names one.
if [[ -n "${ARCHIVE:-}" ]]; then tar -czf "$ARCHIVE" -C "$OUT" .; fi
exit 0
