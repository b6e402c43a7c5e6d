"""Train one SR network (a teacher, or an evaluated model on one dataset)."""

from pathlib import Path

from idc.joblog import job_logging
from idc.sr.train import train_sr

with job_logging(snakemake.log[0]):
    spec, inputs = snakemake.params.spec, snakemake.input
    val = Path(inputs.val) if "val" in inputs.keys() else None
    train_sr(
        model_name=spec["arch"],
        model_kwargs=spec["kwargs"],
        store_path=inputs.store,
        indices_path=inputs.get("indices"),
        out_dir=Path(snakemake.output.model).parent,
        val_hr_dir=val / "HR" if val else None,
        val_lr_dir=val / "LR_bicubic" / f"X{snakemake.config['scale']}" if val else None,
        seed=snakemake.params.seed,
        num_workers=max(0, snakemake.threads - 1),  # one core for the training loop itself
        resume_dir=snakemake.params.resume,
        device=snakemake.config["device"],
        **snakemake.params.test,
        **spec["train"],
    )
