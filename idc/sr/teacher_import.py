"""A teacher from released weights instead of training: convert, then score on the validation set.

The paper starts from pre-trained teachers; a site that has the official SwinIR or MambaIRv2
checkpoints (BasicSR `.pth` with `params_ema`/`params`, or our `.safetensors`) can use them in place
of the workflow's own training (`teachers.<name>.weights`). The validation scores are written next
to the model, so a checkpoint that does not fit the configured scale or data shows up at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from idc.archs.io import import_official_weights
from idc.sr.test import test_sr, write_csv_atomic

logger = logging.getLogger(__name__)


def import_teacher(
    *,
    weights: str | os.PathLike,
    out_model: str | os.PathLike,
    out_metrics: str | os.PathLike,
    arch: str,
    kwargs: Mapping[str, Any],
    testsets: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]],
    scale: int = 4,
    crop_border: int = 2,
    test_y_channel: bool = True,
    device: str = "auto",
) -> Path:
    """Convert `weights` into `out_model` (strict key and shape check against `arch(**kwargs)`),
    then write per-image validation scores to `out_metrics`. Returns the model path."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"teacher weights not found: {weights}")
    model_path = import_official_weights(weights, out_model, arch, **dict(kwargs))
    logger.info("imported %s as %s (%s)", weights, arch, model_path)
    if testsets:
        frame = test_sr(model_path=model_path, testsets=testsets, out_csv=out_metrics, scale=scale,
                        crop_border=crop_border, test_y_channel=test_y_channel, device=device)
        for name, rows in frame.groupby("testset", sort=False):
            logger.info("imported teacher on %s: PSNR %.3f dB, SSIM %.4f", name, rows["psnr"].mean(),
                        rows["ssim"].mean())
    else:
        write_csv_atomic(pd.DataFrame(columns=["testset", "image", "psnr", "ssim"]), out_metrics)
    return model_path
