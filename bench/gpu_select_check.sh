#!/usr/bin/env bash
# Device check for the selection baselines: GPU tests, Sobel score against OpenCV, and the
# paper-size benchmark on CPU and CUDA. Figures go to $OUT (or ./bench-out).
set -euo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -m pytest -q -p no:cacheprovider tests/test_select_gpu.py tests/test_select_conformance.py tests/test_select_properties.py 2>&1 | tail -3
$PY - <<'PY'
import cv2, numpy as np
from idc.select.texture import sobel_scores, to_gray
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
ref = []
for gray in to_gray(images):
    gx = np.abs(cv2.Sobel(gray, cv2.CV_64F, 1, 0)); gy = np.abs(cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    ref.append(cv2.addWeighted(gx, 0.5, gy, 0.5, 0).mean())
print("sobel score vs OpenCV: max abs diff", float(np.abs(sobel_scores(images) - np.array(ref)).max()))
PY
$PY bench/bench_select.py --json "$OUT/bench_paper_size.json"
$PY bench/bench_select.py --n 12076 --pixels-n 12076 --methods herding kcenter --json "$OUT/bench_pixels.json"
