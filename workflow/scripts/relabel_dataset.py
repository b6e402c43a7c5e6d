"""Pair a real-patch dataset's LR patches with the up-sampler teacher's HR (relabelling control)."""

from idc.condense.relabel import relabel_store
from idc.joblog import job_logging
from idc.sr.data import load_indices

with job_logging(snakemake.log[0]):
    from idc.data.store import PatchStore

    indices = None
    if snakemake.input.get("indices"):
        with PatchStore(snakemake.input.store) as store:
            indices = load_indices(snakemake.input.indices, len(store))
    relabel_store(
        store_path=snakemake.input.store,
        upsampler_path=snakemake.input.upsampler,
        out_store=snakemake.output.store,
        indices=indices,
        source=f"relabelled:{snakemake.wildcards.dataset}",
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        batch_size=snakemake.config["condense"]["upsample_batch"],
    )
