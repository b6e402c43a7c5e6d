"""Condense a pack of training images in one optimisation loop (`condense.pack`): each image's
files go into the pack's folder under the names a single job gives them."""

from pathlib import Path

from idc.condense.config import job_settings
from idc.condense.stage import condense_images
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    folder = Path(snakemake.output.folder)
    folder.mkdir(parents=True, exist_ok=True)
    condense_images(
        store_path=snakemake.input.store,
        image_ids=snakemake.params.image_ids,
        extractor_path=snakemake.input.extractor,
        out_paths=[folder / f"{image}.npy" for image in snakemake.params.images],
        log_paths=[folder / f"{image}.json" for image in snakemake.params.images],
        # What to compute from the rule's params; how to run it from the config, outside them.
        cfg=job_settings(snakemake.params.cfg, snakemake.config["condense"]["params"]),
        seed=snakemake.params.seeds,
        device=snakemake.config["device"],
        resume_dir=snakemake.params.resume,
    )
