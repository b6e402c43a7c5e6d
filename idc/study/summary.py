"""The study's numbers, from its files alone: per setting the final diagnostics, plateau and
gradient figures of its condensation logs; the same diagnostics for random real subsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idc.study.config import study_image_ids


def setting_logs(study: dict[str, Any]) -> dict[str, list[dict]]:
    """setting -> its per-image logs, in the study file's order (empty when not run)."""
    from idc.condense.diagnostics import read_condensation_logs

    logs = read_condensation_logs(Path(study["out"]) / "runs")
    return {name: logs.get(name, []) for name in study["settings"]}


def summarise_study(study: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per setting: final diagnostics (mean over the study images), plateau steps."""
    from idc.condense.diagnostics import DIAGNOSTIC_KEYS, diagnostic_at_step, diagnostic_curve, settling_step

    rows = []
    for name, logs in setting_logs(study).items():
        if not logs:
            continue
        row: dict[str, Any] = {"setting": name, "images": len(logs),
                               "seconds": float(np.mean([log["seconds"] for log in logs]))}
        for key in DIAGNOSTIC_KEYS:
            row[key] = float(np.mean([log["diagnostics"]["final"][key] for log in logs]))
            row[key + "_initial"] = float(np.mean([log["diagnostics"]["initial"][key] for log in logs]))
        plateaus = [settling_step(*diagnostic_curve(log)) for log in logs]
        row["mmd_plateau_step"] = int(np.median([p for p in plateaus if p is not None]))
        # the distribution match reached by L_ins alone, before grouping and pairing take over
        warm = [diagnostic_at_step(log, log["config"]["warmup"]) for log in logs]
        row["mmd_warmup_end"] = float(np.mean(warm))
        row["steps"] = int(logs[0]["config"]["steps"])
        row["real_diversity"] = float(np.mean([log["diagnostics"]["reference"]["real_diversity"] for log in logs]))
        grads = {}
        for term in ("ins", "group", "pair"):
            vals = [r[f"grad_{term}"] for log in logs for r in log["steps"]
                    if f"grad_{term}" in r and r["step"] >= log["config"]["warmup"] and r[f"grad_{term}"] > 0]
            grads[term] = float(np.median(vals)) if vals else 0.0
        row.update({f"grad_{k}": v for k, v in grads.items()})
        rows.append(row)
    return rows


def real_subset_reference(study: dict[str, Any], draws: int = 20) -> dict[str, float]:
    """The diagnostics of n *real* patches drawn at random from each study image (n as the
    synthetic sets have), mean over images and draws: what selecting instead of condensing gives."""
    import torch

    from idc.condense.diagnostics import DIAGNOSTIC_KEYS, QualityMonitor
    from idc.condense.memorisation import nearest_real_psnr
    from idc.data.store import PatchStore

    out = Path(study["out"])
    store = PatchStore(out / "data" / "train_patches.h5")
    runs = setting_logs(study)
    n = next(log["n_synthetic"] for logs in runs.values() for log in logs)
    gen = torch.Generator().manual_seed(int(study.get("seed", 0)))
    values: dict[str, list[float]] = {k: [] for k in DIAGNOSTIC_KEYS}
    for image_id in study_image_ids(out / "data" / "train_patches.h5", int(study["images"])):
        real = torch.from_numpy(store.read_lr(store.indices_of_image(image_id))).permute(0, 3, 1, 2).float() / 255.0
        monitor = QualityMonitor(real)
        for _ in range(draws):
            perm = torch.randperm(len(real), generator=gen)
            d = monitor.measure(real[perm[:n]])
            # coverage of the patches not drawn: a drawn patch covers itself exactly (capped PSNR)
            held_out, _ = nearest_real_psnr(monitor.real_u8[perm[n:].numpy()], monitor.real_u8[perm[:n].numpy()])
            d["coverage_psnr"] = float(np.mean(held_out))
            for k in DIAGNOSTIC_KEYS:
                values[k].append(d[k])
    return {k: float(np.mean(v)) for k, v in values.items()} | {"n": n, "draws": draws}
