"""The study's downstream check: for the settings named under `downstream`, an EDSR trained on the
synthetic set of the study images (HR by the teacher) and on the same number of random real pairs
of the same images, with paired seeds, and tested on a benchmark set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from idc.atomic import atomic_open
from idc.study.config import study_image_ids


def _downstream_store(study: dict[str, Any], name: str, paths: dict[str, Path], image_ids: list[int]) -> Path:
    """Synthetic LR of the study images, HR by the teacher, as one patch store (the workflow's
    up-sampling stage)."""
    from idc.condense.stage import upsample_and_assemble

    out = Path(study["out"]) / "downstream" / f"idc-{name}.h5"
    if not out.is_file():
        runs = Path(study["out"]) / "runs" / name
        upsample_and_assemble(synthetic_paths=[runs / f"{i:04d}.npy" for i in image_ids], image_ids=image_ids,
                              upsampler_path=paths["teacher"], out_store=out, source=f"study {name}",
                              seed=int(study.get("seed", 0)), device="cpu", batch_size=32, real_store=paths["store"])
    return out


def _random_indices(study: dict[str, Any], paths: dict[str, Path], image_ids: list[int], n: int,
                    replicate: int) -> Path:
    from idc.data.store import PatchStore

    out = Path(study["out"]) / "downstream" / f"random-n{n}-r{replicate}.idx.npy"
    if out.is_file():
        return out
    store = PatchStore(paths["store"])
    pool = np.concatenate([store.indices_of_image(i) for i in image_ids])
    rng = np.random.default_rng([int(study.get("seed", 0)), 7, replicate])
    picks = np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)
    with atomic_open(out) as handle:
        np.save(handle, picks)
    return out


def _pair_count(store: Path, indices: Path | None) -> int:
    from idc.data.store import PatchStore

    return int(len(np.load(indices))) if indices is not None else len(PatchStore(store))


def _train_and_test(study: dict[str, Any], label: str, store: Path, indices: Path | None, replicate: int) -> dict:
    import torch

    from idc.condense.stage import write_json
    from idc.sr.config import TrainConfig
    from idc.sr.test import evaluate_images, load_test_images, pair_test_images
    from idc.sr.train import train_sr

    ds = study["downstream"]
    out_dir = Path(study["out"]) / "downstream" / "sr" / f"{label}-r{replicate}"
    result_path = out_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    torch.set_num_threads(max(1, int(study.get("workers", 1))))
    model = ds["model"]
    train_sr(TrainConfig.for_network(model, seed=1000 + replicate), store_path=store, out_dir=out_dir,
             indices_path=indices, device="cpu")
    from idc.archs import load_model

    net = load_model(out_dir / "model.safetensors").eval()
    scale = int(study.get("scale", 4))
    images = load_test_images(pair_test_images(study["testset"]["hr"], study["testset"]["lr"], scale), scale)
    rows = evaluate_images(net, images, crop_border=ds.get("crop_border", 2), test_y_channel=True,
                           device=torch.device("cpu"))
    result = {"label": label, "replicate": replicate, "psnr": float(np.mean([r["psnr"] for r in rows])),
              "ssim": float(np.mean([r["ssim"] for r in rows])), "pairs": _pair_count(store, indices)}
    write_json(result_path, result)
    return result


def run_downstream(study: dict[str, Any], paths: dict[str, Path]) -> list[dict]:
    from idc.data.store import PatchStore

    ds = study.get("downstream")
    if not ds:
        return []
    image_ids = study_image_ids(paths["store"], int(study["images"]))
    results = []
    for replicate in range(int(ds.get("replicates", 2))):
        for name in ds["settings"]:
            store = _downstream_store(study, name, paths, image_ids)
            results.append(_train_and_test(study, f"idc-{name}", store, None, replicate))
        n = len(PatchStore(_downstream_store(study, ds["settings"][0], paths, image_ids)))  # pairs, not images
        idx = _random_indices(study, paths, image_ids, n, replicate)
        results.append(_train_and_test(study, "random", paths["store"], idx, replicate))
    return results


def downstream_results(study: dict[str, Any]) -> list[dict[str, Any]]:
    folder = Path(study["out"]) / "downstream" / "sr"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
