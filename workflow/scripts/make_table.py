"""Collect per-image metrics into one of the paper's tables (CSV, Markdown, LaTeX)."""

from pathlib import Path

from idc.joblog import job_logging
from idc.report.tables import make_tables

with job_logging(snakemake.log[0]):
    spec = dict(snakemake.params.spec)
    spec["methods"] = spec.pop("datasets")  # the table's rows are our training sets
    entries = [
        {"method": row, "model": model, "replicate": replicate, "path": path}
        for (row, _, replicate, model), path in zip(snakemake.params.entries, snakemake.input.metrics)
    ]
    make_tables(entries=entries, out_dir=Path(snakemake.output.csv).parent, tables={snakemake.wildcards.table: spec})
