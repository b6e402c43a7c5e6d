"""A teacher from released weights: convert them and score the result on the validation set."""

from pathlib import Path

from idc.joblog import job_logging
from idc.sr.teacher_import import import_teacher

with job_logging(snakemake.log[0]):
    spec, inputs, scale = snakemake.params.spec, snakemake.input, snakemake.params.scale
    val = Path(inputs.val) if "val" in inputs.keys() else None
    import_teacher(
        weights=inputs.weights,
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        arch=spec["arch"],
        kwargs=spec["kwargs"],
        testsets={snakemake.params.val_name: (val / "HR", val / "LR_bicubic" / f"X{scale}")} if val else {},
        scale=scale,
        device=snakemake.config["device"],
        **snakemake.params.test,
    )
