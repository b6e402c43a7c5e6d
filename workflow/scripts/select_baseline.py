"""Select a baseline subset (Random, Herding, K-Center, DCSR) of the real patch store."""

from idc.joblog import job_logging
from idc.select.stage import dataset_pair_count, select_baseline

with job_logging(snakemake.log[0]):
    # A baseline at the size of another training set: its pair count is known only once that
    # set exists (an imported folder is counted after its import).
    pairs = (
        dataset_pair_count(snakemake.input.pairs_of, snakemake.input.get("pairs_of_indices"))
        if "pairs_of" in snakemake.input.keys()
        else None
    )
    select_baseline(
        store_path=snakemake.input.store,
        out_path=snakemake.output.indices,
        teacher_path=snakemake.input.get("teacher"),
        seed=snakemake.params.seed,
        device=snakemake.config["device"],
        pairs=pairs,
        **snakemake.params.selection,
    )
