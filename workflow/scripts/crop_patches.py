"""Crop every training image into aligned HR/LR patches in one HDF5 patch store."""

from idc.data.crop import DIV2K_TRAIN_PATCHES, crop_images_to_store
from idc.data.download import verify_div2k_dir
from idc.data.images import list_images
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    crop = snakemake.params.crop
    div2k = snakemake.params.source == "div2k"
    if div2k:  # a local copy used in place must be complete before hours of work start
        verify_div2k_dir(snakemake.input.hr)
    first = snakemake.params.images  # keep only the first K images (name order); None = all
    paper_crop = first is None and div2k and (crop["hr_size"], crop["step"], crop["thresh"], snakemake.params.scale) == (256, 128, 0, 4)
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
        expected_patches=DIV2K_TRAIN_PATCHES if paper_crop else None,
        hr_files=None if first is None else list_images(snakemake.input.hr)[:first],
    )
