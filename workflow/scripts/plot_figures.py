"""Figures: validation trajectories, synthetic patch grids, condensation loss curves."""

from pathlib import Path

from idc.joblog import job_logging
from idc.report.figures import plot_workflow_figures

with job_logging(snakemake.log[0]):
    plot_workflow_figures(
        out_dir=Path(snakemake.output.done).parent,
        trajectories=dict(zip(snakemake.params.pairs, snakemake.input.trajectories)),
        synthetic_stores=list(snakemake.input.stores),
        condense_logs=list(snakemake.input.condense_logs),
        snapshots=list(snakemake.input.snapshots),
        real_store=snakemake.input.real_store,
        title=f"Validation PSNR on {snakemake.params.validation}",
        idc_dir=snakemake.output.idc,
    )
