"""Seconds per *converged* condensed instance on one real image, for several condensation paths.

Each path condenses the same real image (LR patches of one photo, cropped as the mini config
does) from the same seed; the figures are wall seconds, milliseconds per step, steps taken, and
the held-out diagnostics at the end (idc.condense.diagnostics), so paths are compared at equal
quality, not per step. Ratios are against the first path of the same run.

    python bench/condense_converged.py --image ../shared/data/BSD100/HR/img_001.png \\
        --extractor results/study/teacher/model.safetensors --json

Paths (`PATHS`): the literal setting from noise at the 3,000 steps it needs at these sizes
(fresh frequencies every step: the reference), the study's best setting (real start, balanced pair
weight) at 1,000 steps, the same with a frequency pool of 16 x F (real side once), and with the
plateau stop on the held-out MMD from 3,000 configured steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idc.condense.condenser import condense_instance  # noqa: E402
from idc.study.config import paper_schedule  # noqa: E402

MINI = dict(num_freqs=256, channels=64, kernel=3, groups=4, log_every=25, checkpoint_every=0, snapshot_patches=0,
            budget="ceil_per_image")  # n = 4 of 35, as in the study
# name -> (settings, steps). The first is the reference: the literal paper setting (noise start),
# run long enough to converge at mini sizes (docs/condensation-study.md: 3,000 steps).
PATHS = {
    "literal-3000": ({"init": "random"}, 3000),
    "real-balanced-1000": ({"init": "real", "w_pair": 3000.0}, 1000),
    "real-balanced-1000-pool": ({"init": "real", "w_pair": 3000.0, "freq_pool": 16}, 1000),
    "real-balanced-3000-pool-plateau": ({"init": "real", "w_pair": 3000.0, "freq_pool": 16,
                                         "stop_on_plateau": True}, 3000),
}


def real_patches(image: Path, hr_size: int, step: int) -> torch.Tensor:
    from idc.data.crop import crop_image_pair
    from idc.data.images import read_image

    lr, _, _ = crop_image_pair(read_image(image), None, scale=4, hr_size=hr_size, step=step)
    return torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="one training photo (HR)")
    ap.add_argument("--extractor", default=None, help="idc.archs model file (default: a random mini SwinIR)")
    ap.add_argument("--hr-size", type=int, default=96)
    ap.add_argument("--crop-step", type=int, default=64)
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of " + ",".join(PATHS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from idc.archs import build_model, deterministic_inference, load_model

    if args.extractor:
        extractor = deterministic_inference(load_model(args.extractor))
    else:
        torch.manual_seed(0)
        extractor = build_model("swinir", upscale=4, in_chans=3, img_size=24, window_size=8, img_range=1.0,
                                depths=[2, 2], embed_dim=24, num_heads=[4, 4], mlp_ratio=2.0,
                                upsampler="pixelshuffledirect", resi_connection="1conv")
    real = real_patches(Path(args.image), args.hr_size, args.crop_step)
    rows = []
    for name in args.paths.split(","):
        settings, steps = PATHS[name]
        cfg = {**MINI, **paper_schedule(steps), **settings}
        t0 = time.perf_counter()
        _, log = condense_instance(real, extractor, cfg, seed=0, progress=False)
        seconds = time.perf_counter() - t0
        steps = log["stopping"]["end_step"]
        final = log["diagnostics"]["final"]
        rows.append({"path": name, "seconds": round(seconds, 2), "steps": steps,
                     "ms_per_step": round(1000 * seconds / max(1, steps), 2),
                     "plateau_step": log["stopping"]["plateau_step"],
                     **{k: round(final[k], 5) for k in ("mmd", "colour_mean_gap", "diversity", "coverage_psnr")}})
    base = rows[0]
    for row in rows:
        row["speedup_per_image"] = round(base["seconds"] / row["seconds"], 2)
        row["speedup_per_step"] = round(base["ms_per_step"] / row["ms_per_step"], 2)
    summary = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
               "torch": torch.__version__, "image": Path(args.image).name, "n_real": int(real.shape[0]),
               "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for row in rows:
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
