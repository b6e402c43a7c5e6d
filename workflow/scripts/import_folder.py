"""Import paired HR/LR folders made elsewhere as a dataset (a patch store) of the run."""

from idc.data.paired import import_paired
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    import_paired(
        snakemake.input.hr,
        snakemake.output.store,
        lr_dir=snakemake.input.get("lr"),
        meta_info=snakemake.input.get("meta_info"),
        scale=snakemake.params.scale,
        workers=snakemake.threads,
        source=f"folder:{snakemake.wildcards.dataset}",
        **snakemake.params.crop,
    )
