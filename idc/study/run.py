"""Running the study: the patch store of every photo in the folder and the extractor teacher
trained on it, then for every (setting, image) the condensation through the workflow's stage with
the quality diagnostics of `idc.condense.diagnostics` logged along the way, then the downstream
check. Each result is skipped when its file exists, so an interrupted study resumes."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from idc.study.config import load_study, setting_config, study_image_ids
from idc.study.downstream import run_downstream

logger = logging.getLogger(__name__)


def _prepare(study: dict[str, Any]) -> dict[str, Path]:
    """Patch store of every photo in the folder, and the extractor teacher trained on it."""
    from idc.data.crop import crop_images_to_store
    from idc.sr.config import TrainConfig
    from idc.sr.train import train_sr

    out = Path(study["out"])
    store = out / "data" / "train_patches.h5"
    if not store.is_file():
        crop = study["crop"]
        crop_images_to_store(study["folder"], store, scale=int(study.get("scale", 4)), hr_size=crop["hr_size"],
                             step=crop["step"], seed=int(study.get("seed", 0)), workers=1, source=study["folder"])
    teacher_dir = out / "teacher"
    if not (teacher_dir / "model.safetensors").is_file():
        t = study["teacher"]
        val = study.get("testset", {})
        train_sr(TrainConfig.for_network(t, seed=int(study.get("seed", 0))), store_path=store, out_dir=teacher_dir,
                 device="cpu", val_hr_dir=val.get("hr"), val_lr_dir=val.get("lr"))
    return {"store": store, "teacher": teacher_dir / "model.safetensors"}


def _condense_one(job: tuple[dict[str, Any], str, int, str, str]) -> str:
    """One (setting, image) condensation through the stage the workflow uses (same files, same
    instance seed); a worker process's unit of work. Skipped when its log exists."""
    import torch

    from idc.condense.stage import condense_image

    study, name, image_id, store_path, teacher_path = job
    folder = Path(study["out"]) / "runs" / name
    log_path = folder / f"{image_id:04d}.json"
    if not log_path.is_file():
        torch.set_num_threads(1)
        condense_image(store_path=store_path, image_id=image_id, extractor_path=teacher_path,
                       out_path=folder / f"{image_id:04d}.npy", log_path=log_path,
                       cfg=setting_config(study, name), seed=int(study.get("seed", 0)), device="cpu")
        logger.info("study: %s image %d done", name, image_id)
    return str(log_path)


def run_condensations(study: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    image_ids = study_image_ids(paths["store"], int(study["images"]))
    jobs = [(study, name, i, str(paths["store"]), str(paths["teacher"])) for name in study["settings"]
            for i in image_ids]
    workers = int(study.get("workers", 1))
    done = []
    if workers <= 1:
        for job in jobs:
            done.append(_condense_one(job))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for k, path in enumerate(pool.map(_condense_one, jobs), 1):
                done.append(path)
                logger.info("study: %d/%d condensations complete", k, len(jobs))
    return done


def run_study(study_path: str | os.PathLike) -> None:
    study = load_study(study_path)
    paths = _prepare(study)
    run_condensations(study, paths)
    run_downstream(study, paths)
