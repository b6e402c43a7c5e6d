"""Copy one image's condensation files out of its pack's folder to the paths of a single job."""

from idc.condense.stage import unpack_condensed
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    unpack_condensed(
        snakemake.input.folder,
        snakemake.wildcards.image,
        [snakemake.output.synthetic, snakemake.output.log_json, snakemake.output.snapshots],
    )
