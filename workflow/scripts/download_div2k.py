"""Download DIV2K (training HR, optionally the official bicubic X4 LR) with checksums."""

from pathlib import Path

from idc.data.download import fetch_div2k
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    parts = ("train_HR", "train_LR_bicubic_X4") if "lr" in snakemake.output.keys() else ("train_HR",)
    fetch_div2k(Path(snakemake.output.hr).parent, parts=parts, base_url=snakemake.params.url)
