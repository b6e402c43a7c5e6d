"""Up-sample every image's synthetic LR patches with the teacher; assemble one patch store."""

from idc.condense.stage import memorisation_report, upsample_and_assemble
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    upsample_and_assemble(
        synthetic_paths=list(snakemake.input.synthetic),
        image_ids=snakemake.params.image_ids,
        upsampler_path=snakemake.input.upsampler,
        out_store=snakemake.output.store,
        source=f"idc:{snakemake.wildcards.dataset}",
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        batch_size=snakemake.config["condense"]["upsample_batch"],
    )
    memorisation_report(
        synthetic_store=snakemake.output.store, real_store=snakemake.input.store, out_path=snakemake.output.memorisation
    )
