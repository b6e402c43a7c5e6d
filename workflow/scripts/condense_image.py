"""Condense one training image into its share of the synthetic LR patches (IDC; `budget` key)."""

from idc.condense.config import job_settings
from idc.condense.stage import condense_image
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    condense_image(
        store_path=snakemake.input.store,
        image_id=snakemake.params.image_id,
        extractor_path=snakemake.input.extractor,
        out_path=snakemake.output.synthetic,
        log_path=snakemake.output.log_json,
        # What to compute from the rule's params; how to run it from the config, outside them.
        cfg=job_settings(snakemake.params.cfg, snakemake.config["condense"]["params"]),
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        resume_dir=snakemake.params.resume,
    )
