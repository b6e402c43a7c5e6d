"""Test one trained SR network on every benchmark set: per-image PSNR/SSIM rows."""

from pathlib import Path

from idc.joblog import job_logging
from idc.sr.test import test_sr

with job_logging(snakemake.log[0]):
    scale = snakemake.params.scale
    dirs = {name: Path(d) for name, d in zip(snakemake.params.names, snakemake.input.testsets)}
    test_sr(
        model_path=snakemake.input.model,
        testsets={name: (d / "HR", d / "LR_bicubic" / f"X{scale}") for name, d in dirs.items()},
        out_csv=snakemake.output.metrics,
        scale=scale,
        device=snakemake.config["device"],
        **snakemake.params.test,
    )
