"""Paired differences with bootstrap intervals from every replicate's per-image metrics."""

from pathlib import Path

from idc.joblog import job_logging
from idc.report.verdict import make_verdict_from_entries

with job_logging(snakemake.log[0]):
    entries = [
        {"method": row, "model": model, "replicate": replicate, "path": path}
        for (row, _, replicate, model), path in zip(snakemake.params.entries, snakemake.input.metrics)
    ]
    out = Path(snakemake.output.csv)
    make_verdict_from_entries(entries, dict(snakemake.params.spec), out.with_suffix(""))
