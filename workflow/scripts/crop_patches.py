"""Crop every training image into aligned HR/LR patches in one HDF5 patch store."""

from idc.data.crop import crop_images_to_store
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    crop = snakemake.params.crop
    crop_images_to_store(
        snakemake.input.hr,
        snakemake.output.store,
        scale=snakemake.params.scale,
        hr_size=crop["hr_size"],
        step=crop["step"],
        thresh=crop["thresh"],
        lr_dir=snakemake.input.lr or None,
        seed=snakemake.config["seed"],
        workers=snakemake.threads,
        source=snakemake.params.source,
    )
