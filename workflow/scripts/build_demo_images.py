"""Write the embedded demo image set (scikit-image's bundled photos): train/HR and test/HR."""

from pathlib import Path

from idc.data.demo import build_demo_images
from idc.joblog import job_logging

with job_logging(snakemake.log[0]):
    build_demo_images(Path(snakemake.output.train).parents[1], max_side=snakemake.params.max_side)
