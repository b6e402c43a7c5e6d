"""The workflow's figure set: validation trajectories (paper Figure 3, right), synthetic LR/HR
patch grids of the first instances of every IDC dataset, and condensation loss curves."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from idc.atomic import atomic_write_text
from idc.report.figures import plot_loss_curves, plot_progress_grid, plot_store_patches, plot_trajectory_files

logger = logging.getLogger(__name__)


def plot_workflow_figures(
    *,
    out_dir: str | os.PathLike[str],
    trajectories: Mapping[tuple[str, str], str | os.PathLike[str]],
    synthetic_stores: Sequence[str | os.PathLike[str]],
    condense_logs: Sequence[str | os.PathLike[str]],
    title: str,
    snapshots: Sequence[str | os.PathLike[str]] = (),
    real_store: str | os.PathLike[str] | None = None,
    instances_per_store: int = 3,
    idc_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write every figure into `out_dir` (the IDC ones, whose number depends on the data, into
    `idc_dir` when given: a folder the workflow report shows whole), then `done.txt` listing
    them (written last, so its presence means the set is complete)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    idc_dir = Path(idc_dir) if idc_dir is not None else out_dir
    idc_dir.mkdir(parents=True, exist_ok=True)
    written = []
    curves = {f"{dataset} / {model}": path for (dataset, model), path in trajectories.items()}
    written.append(plot_trajectory_files(curves, out_dir / "trajectories.png", title))
    for store in synthetic_stores:
        with h5py.File(store, "r") as fh:
            image_ids = np.unique(fh["image_id"][()])[:instances_per_store]
        name = Path(store).stem
        for image_id in image_ids:
            out = idc_dir / f"patches_{name}_{int(image_id):04d}.png"
            written.append(plot_store_patches(store, int(image_id), out, title=f"{name}: image {int(image_id)}"))
    if condense_logs:
        written.append(plot_loss_curves(condense_logs, idc_dir / "condense_losses.png"))
    for path in snapshots:
        written.extend(plot_progress_files(path, real_store, idc_dir))
    logger.info("wrote %d figures to %s", len(written), out_dir)
    names = [p.relative_to(out_dir).as_posix() if p.is_relative_to(out_dir) else str(p) for p in written]
    atomic_write_text(out_dir / "done.txt", "\n".join(names) + "\n")
    return written


def plot_progress_files(snapshot_file: str | os.PathLike[str], real_store: str | os.PathLike[str] | None,
                        out_dir: Path) -> list[Path]:
    """`progress_<condense key>_<image>.png`: an instance's synthetic patches at each snapshot step
    and, in the last row, as many of its real patches (an instance's log names its image id)."""
    import json

    from idc.condense.stage import load_snapshots

    path = Path(snapshot_file)
    steps, patches = load_snapshots(path)
    if len(steps) == 0:
        return []  # snapshots switched off for this run
    rows = [(f"step {int(s)}", p) for s, p in zip(steps, patches)]
    log = json.loads(path.with_name(path.name.replace(".snapshots.npz", ".json")).read_text())
    image_id = int(log["image_id"])
    if real_store is not None:
        with h5py.File(real_store, "r") as fh:
            where = np.flatnonzero(fh["image_id"][()] == image_id)[: patches.shape[1]]
            rows.append(("real", fh["lr"][where]))
    name = f"progress_{path.parent.name}_{path.name.replace('.snapshots.npz', '')}.png"
    title = f"{path.parent.name}, image {log['image_id']}: synthetic LR patches during condensation"
    return [plot_progress_grid(rows, out_dir / name, title)]
