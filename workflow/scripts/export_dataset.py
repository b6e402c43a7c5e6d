"""Export one dataset of the run as paired PNG folders (BasicSR layout) with a dataset card."""

from idc.data.paired import export_paired
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    export_paired(
        snakemake.output.folder,
        snakemake.input.store,
        indices_path=snakemake.input.get("indices"),
        scale=snakemake.params.scale,
        card=snakemake.params.card,
        memorisation_path=snakemake.input.get("memorisation"),
        names_from=snakemake.input.get("real"),
    )
