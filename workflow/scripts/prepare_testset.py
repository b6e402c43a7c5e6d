"""Mod-crop a benchmark's HR images and provide its LR images (given, or our MATLAB imresize)."""

from idc.data.benchmarks import prepare_testset
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    prepare_testset(
        snakemake.wildcards.testset,
        snakemake.output[0],
        hr_dir=snakemake.input.hr,
        lr_dir=snakemake.input.get("lr"),
        scale=snakemake.params.scale,
        skip=snakemake.params.cut["skip"],
        images=snakemake.params.cut["images"],
    )
