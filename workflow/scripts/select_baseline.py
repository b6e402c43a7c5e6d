"""Select a baseline subset (Random, Herding, K-Center, DCSR) of the real patch store."""

from idc.joblog import job_logging
from idc.select.stage import select_baseline

with job_logging(snakemake.log[0]):
    select_baseline(
        store_path=snakemake.input.store,
        out_path=snakemake.output.indices,
        teacher_path=snakemake.input.get("teacher"),
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        **snakemake.params.selection,
    )
