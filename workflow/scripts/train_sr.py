"""Train one SR network (a teacher, or an evaluated model on one dataset)."""

from pathlib import Path

from idc.joblog import job_logging
from idc.sr.distributed import launch_training
from idc.sr.train import TrainConfig, train_sr

with job_logging(snakemake.log[0]):
    spec, inputs = snakemake.params.spec, snakemake.input
    val = Path(inputs.val) if "val" in inputs.keys() else None
    ranks = snakemake.resources.ranks
    cfg = TrainConfig.for_network(spec, seed=snakemake.params.seed, metric=snakemake.params.test)
    run = dict(
        store_path=inputs.store,
        indices_path=inputs.get("indices"),
        out_dir=Path(snakemake.output.model).parent,
        val_hr_dir=val / "HR" if val else None,
        val_lr_dir=val / "LR_bicubic" / f"X{snakemake.config['scale']}" if val else None,
        # each rank keeps one of its cores for the training loop itself
        num_workers=max(0, snakemake.threads // ranks - 1),
        resume_dir=snakemake.params.resume,
        device=snakemake.config["device"],
    )
    if ranks == 1:
        train_sr(cfg, **run)
    elif launch_training(cfg, run, ranks, threads=snakemake.threads) != 0:
        raise SystemExit(f"{ranks}-rank training failed or was stopped; see {snakemake.log[0]}")
