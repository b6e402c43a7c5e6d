"""Condense one training image into its share of the synthetic LR patches (IDC; `budget` key)."""

from idc.condense.config import split_execution_settings
from idc.condense.stage import condense_image
from idc.joblog import job_logging

# How to run (not what to compute): from the config, outside the rule's params.
_, execution = split_execution_settings(snakemake.config["condense"]["params"] or {})

with job_logging(snakemake.log[0]):
    condense_image(
        store_path=snakemake.input.store,
        image_id=snakemake.params.image_id,
        extractor_path=snakemake.input.extractor,
        out_path=snakemake.output.synthetic,
        log_path=snakemake.output.log_json,
        cfg={**snakemake.params.cfg, **execution},
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        resume_dir=snakemake.params.resume,
    )
