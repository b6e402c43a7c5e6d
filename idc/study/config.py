"""The study file: a folder of training photos, the first `images` of them (sorted names) as the
study's instances, the crop, a small extractor teacher trained on *all* photos of the folder, the
shared base settings and a list of named settings, each a set of `CondenseConfig` overrides of
the base; for the settings named under `downstream`, the downstream check's model and test set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from idc.names import check_name

STUDY_KEYS = {"name", "out", "seed", "scale", "folder", "images", "crop", "teacher", "base", "settings",
              "downstream", "testset", "workers", "reading"}


def paper_schedule(steps: int) -> dict[str, Any]:
    """The paper's schedule (20k steps: 4k warm-up, 25 assignments every 400 steps, lr x0.1 at
    15k/17k/19k) scaled to `steps`, keeping every event and milestone at the same fraction."""
    f = steps / 20000.0
    interval = max(1, round(400 * f))
    return {"steps": steps, "warmup": round(4000 * f), "assign_interval": interval, "assign_times": 25,
            "milestones": [round(m * f) for m in (15000, 17000, 19000)]}


def load_study(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file not found: {path}")
    study = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(study) - STUDY_KEYS)
    if unknown:
        raise ValueError(f"study {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(STUDY_KEYS))})")
    for key in ("out", "folder", "images", "crop", "teacher", "base", "settings"):
        if key not in study:
            raise ValueError(f"study {path}: missing key {key!r}")
    base = path.parent
    for key in ("out", "folder"):
        study[key] = str((base / study[key]).resolve()) if not os.path.isabs(study[key]) else study[key]
    if "reading" in study:  # the written reading of the results, appended to the document
        study["reading"] = str((base / study["reading"]).resolve())
    if "testset" in study:
        study["testset"] = {k: str((base / v).resolve()) for k, v in study["testset"].items()}
    # every setting must be a valid condensation config and a folder name before any work starts
    for name in study["settings"]:
        check_name(name, f"study {path}: setting")
        setting_config(study, name)
    for name in study.get("downstream", {}).get("settings", []):
        if name not in study["settings"]:
            raise ValueError(f"study {path}: downstream setting {name!r} is not under settings")
    return study


def setting_config(study: dict[str, Any], name: str) -> dict[str, Any]:
    """Base settings (with the paper schedule scaled to the base's steps), then the setting's."""
    from idc.condense.config import CondenseConfig

    if name not in study["settings"]:
        raise ValueError(f"study: unknown setting {name!r}")
    base = dict(study["base"])
    overrides = dict(study["settings"][name] or {})
    steps = int(overrides.get("steps", base.get("steps", 20000)))
    values = {**base, **paper_schedule(steps), **overrides}
    values["ratio"] = float(base.get("ratio", 0.1))
    return CondenseConfig.from_dict(values).to_dict()


def study_image_ids(store_path: Path, count: int) -> list[int]:
    from idc.data.store import PatchStore

    ids = np.unique(PatchStore(store_path).image_ids)
    if count > len(ids):
        raise ValueError(f"study asks for {count} images but the store holds {len(ids)}")
    return [int(i) for i in ids[:count]]
