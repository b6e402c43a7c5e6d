"""Figures: synthetic LR/HR patches per instance, validation trajectories, condensation losses,
and `plot_workflow_figures`, the workflow's figure set.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend state) at
a fixed pixel size (no tight bounding box), and written atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from idc import __version__
from idc.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

LOSS_KEYS = ("loss", "loss_ins", "loss_group", "loss_pair")
LOSS_TITLES = {
    "loss": "total loss",
    "loss_ins": "instance loss $L_{ins}$",
    "loss_group": "group loss $L_{group}$",
    "loss_pair": "pair loss $L_{pair}$",
}
WEIGHTED_KEYS = ("w_loss_ins", "w_loss_group", "w_loss_pair")
WEIGHTED_LABELS = {"w_loss_ins": "$w_{ins} L_{ins}$", "w_loss_group": "$w_{group} L_{group}$",
                   "w_loss_pair": "$w_{pair} (L_{pair} + \\lambda R_{deform})$"}
# Above this many instance logs, single curves are drawn faintly with their median on top.
MAX_LABELLED_CURVES = 10


def new_figure(size_px: tuple[int, int], dpi: int) -> Figure:
    """An empty figure of `size_px` pixels on its own Agg canvas."""
    width, height = (int(v) for v in size_px)
    if width < 16 or height < 16 or dpi <= 0:
        raise ValueError(
            f"figure size must be at least 16x16 px with positive dpi, got {size_px} @ {dpi}"
        )
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, out_png: str | os.PathLike[str], dpi: int) -> Path:
    """Write `figure` as PNG atomically, with the producing software in its metadata."""
    software = f"idc-workflow {__version__}, matplotlib {matplotlib.__version__}"
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, metadata={"Software": software})
    logger.info("wrote %s", out_png)
    return Path(out_png)


# ---------------------------------------------------------------- patch grids


def patch_grid_shape(n: int, with_hr: bool, columns: int) -> tuple[int, int]:
    """(rows, columns) of cells for n patches; with HR each patch takes an LR and an HR cell."""
    n_columns = min(n, columns)
    n_rows = math.ceil(n / columns) * (2 if with_hr else 1)
    return n_rows, n_columns


def patch_grid_size(
    n: int, with_hr: bool, *, columns: int = 8, cell_px: int = 128, title_px: int = 48
) -> tuple[int, int]:
    """Pixel size (width, height) of the PNG that `plot_patch_grid` writes."""
    rows, cols = patch_grid_shape(n, with_hr, columns)
    return cols * cell_px, rows * cell_px + title_px


def _check_patches(name: str, patches: np.ndarray) -> np.ndarray:
    patches = np.asarray(patches)
    if patches.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {patches.dtype}")
    if patches.ndim != 4 or patches.shape[-1] != 3 or patches.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, h, w, 3) with n > 0, got {patches.shape}")
    return patches


def plot_patch_grid(
    lr_patches: np.ndarray,
    hr_patches: np.ndarray | None,
    out_png: str | os.PathLike[str],
    title: str,
    *,
    max_patches: int = 32,
    columns: int = 8,
    cell_px: int = 128,
    dpi: int = 100,
) -> Path:
    """Grid of (synthetic) LR patches, each with its HR patch below when `hr_patches` is given.

    The first `max_patches` patches are shown; LR is drawn with nearest-neighbour
    magnification so its pixels stay visible next to the HR patch. The PNG measures
    `patch_grid_size(...)` pixels.
    """
    lr = _check_patches("lr_patches", lr_patches)
    hr = None if hr_patches is None else _check_patches("hr_patches", hr_patches)
    if hr is not None and hr.shape[0] != lr.shape[0]:
        raise ValueError(f"hr_patches has {hr.shape[0]} patches, lr_patches {lr.shape[0]}")
    if max_patches < 1 or columns < 1 or cell_px < 8:
        raise ValueError("max_patches and columns must be >= 1, cell_px >= 8")
    n = min(lr.shape[0], max_patches)
    title_px = 48
    width, height = patch_grid_size(
        n, hr is not None, columns=columns, cell_px=cell_px, title_px=title_px
    )
    figure = new_figure((width, height), dpi)
    caption = f"{title}\n{n} of {lr.shape[0]} patches, LR {lr.shape[1]}x{lr.shape[2]}"
    if hr is not None:
        caption += f" (top) / HR {hr.shape[1]}x{hr.shape[2]} (below)"
    figure.text(0.5, 1 - 4 / height, caption, ha="center", va="top", fontsize=9)
    rows_per_patch = 2 if hr is not None else 1
    pad = 0.03  # fraction of a cell left blank around each patch
    for i in range(n):
        grid_row, grid_col = divmod(i, columns)
        images = [lr[i]] + ([hr[i]] if hr is not None else [])
        for k, image in enumerate(images):
            row = grid_row * rows_per_patch + k
            left = (grid_col + pad) * cell_px / width
            bottom = (height - title_px - (row + 1 - pad) * cell_px) / height
            axes = figure.add_axes(
                (left, bottom, (1 - 2 * pad) * cell_px / width, (1 - 2 * pad) * cell_px / height)
            )
            axes.imshow(image, interpolation="nearest")
            axes.set_axis_off()
    return save_figure(figure, out_png, dpi)


def read_store_patches(
    store_path: str | os.PathLike[str], image_id: int, *, max_patches: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """LR and HR patches of one instance (`image_id`) from an HDF5 patch store."""
    path = Path(store_path)
    if not path.is_file():
        raise FileNotFoundError(f"patch store not found: {path}")
    with h5py.File(path, "r") as store:
        for key in ("lr", "hr", "image_id"):
            if key not in store:
                raise ValueError(f"{path}: patch store lacks dataset {key!r}")
        rows = np.flatnonzero(store["image_id"][()] == image_id)[:max_patches]
        if rows.size == 0:
            raise ValueError(f"{path}: no patches of image_id {image_id}")
        return store["lr"][rows], store["hr"][rows]


def plot_store_patches(
    store_path: str | os.PathLike[str],
    image_id: int,
    out_png: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_patches: int = 32,
    **grid_options: int,
) -> Path:
    """`plot_patch_grid` for one instance of an HDF5 patch store (e.g. IDC's synthetic set)."""
    lr, hr = read_store_patches(store_path, image_id, max_patches=max_patches)
    title = title or f"{Path(store_path).name}: image {image_id}"
    return plot_patch_grid(lr, hr, out_png, title, max_patches=max_patches, **grid_options)


def plot_progress_grid(
    rows: Sequence[tuple[str, np.ndarray]],
    out_png: str | os.PathLike[str],
    title: str,
    *,
    cell_px: int = 96,
    label_px: int = 130,
    dpi: int = 100,
) -> Path:
    """One labelled row of LR patches per entry of `rows` ((label, (k, h, w, 3) uint8)), e.g. an
    instance's synthetic patches at several condensation steps and, last, its real patches."""
    if not rows:
        raise ValueError("no rows to plot")
    checked = [(label, _check_patches(f"row {label!r}", patches)) for label, patches in rows]
    columns = max(p.shape[0] for _, p in checked)
    title_px = 40
    width, height = label_px + columns * cell_px, title_px + len(checked) * cell_px
    figure = new_figure((width, height), dpi)
    figure.text(0.5, 1 - 4 / height, title, ha="center", va="top", fontsize=9)
    pad = 0.03
    for r, (label, patches) in enumerate(checked):
        bottom = (height - title_px - (r + 1 - pad) * cell_px) / height
        figure.text(4 / width, bottom + 0.5 * cell_px / height, label, ha="left", va="center", fontsize=8)
        for c, image in enumerate(patches):
            left = (label_px + (c + pad) * cell_px) / width
            axes = figure.add_axes((left, bottom, (1 - 2 * pad) * cell_px / width, (1 - 2 * pad) * cell_px / height))
            axes.imshow(image, interpolation="nearest")
            axes.set_axis_off()
    return save_figure(figure, out_png, dpi)


# ---------------------------------------------------------------- trajectories


def _check_curve(label: str, frame: pd.DataFrame, value: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"trajectory {label!r} must be a DataFrame")
    missing = [c for c in ("step", value) if c not in frame.columns]
    if missing:
        raise ValueError(f"trajectory {label!r} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"trajectory {label!r} has no rows")
    curve = frame[["step", value]].astype(float).sort_values("step")
    if not np.isfinite(curve.to_numpy()).all():
        raise ValueError(f"trajectory {label!r} holds non-finite values")
    return curve


def read_trajectory_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    return pd.read_csv(path)


def plot_trajectories(
    curves: Mapping[str, pd.DataFrame],
    out_png: str | os.PathLike[str],
    title: str,
    *,
    value: str = "psnr",
    ylabel: str = "PSNR (dB)",
    size_px: tuple[int, int] = (800, 500),
    dpi: int = 100,
) -> Path:
    """Validation PSNR against training step, one line per label (the paper's Figure 3, right).

    Each curve's best value is marked with a dot.
    """
    if not curves:
        raise ValueError("no trajectories to plot")
    checked = {label: _check_curve(label, frame, value) for label, frame in curves.items()}
    figure = new_figure(size_px, dpi)
    axes = figure.add_subplot()
    for label, curve in checked.items():
        (line,) = axes.plot(curve["step"], curve[value], label=label, linewidth=1.5)
        best = curve[value].idxmax()
        axes.plot(curve.at[best, "step"], curve.at[best, value], "o", color=line.get_color())
    axes.set_xlabel("training step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
    return save_figure(figure, out_png, dpi)


def plot_trajectory_files(
    curves: Mapping[str, str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    title: str,
    **options: object,
) -> Path:
    """`plot_trajectories` from `trajectory.csv` files (label -> path); all read first."""
    frames = {label: read_trajectory_csv(path) for label, path in curves.items()}
    return plot_trajectories(frames, out_png, title, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- condensation losses


def read_condense_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The `steps` records of a per-instance condensation log as a frame (missing losses NaN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"condensation log not found: {path}")
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    steps = log.get("steps") if isinstance(log, dict) else None
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{path}: no 'steps' records")
    for i, record in enumerate(steps):
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}: steps[{i}] has no 'step'")
    frame = pd.DataFrame.from_records(steps)
    for key in ("step", "deform_reg", *LOSS_KEYS):
        if key not in frame.columns:
            frame[key] = np.nan
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype(float)
    if frame[list(LOSS_KEYS)].isna().all().all():
        raise ValueError(f"{path}: no loss values in any step record")
    # Each term as it enters the total (weight x value), from the run's own settings; a term is
    # missing (NaN) where it is switched off or not active yet.
    cfg = log.get("config") or {}
    warmup = float(cfg.get("warmup", 0))
    if cfg:
        weighted = {
            "w_loss_ins": frame["loss_ins"] * cfg.get("w_ins", np.nan) if cfg.get("use_ins", True) else np.nan,
            "w_loss_group": (frame["loss_group"] * cfg.get("w_group", np.nan)).where(frame["step"] >= warmup)
            if cfg.get("use_group", True) else np.nan,
            "w_loss_pair": ((frame["loss_pair"] + cfg.get("deform_l2", 0.0) * frame["deform_reg"].fillna(0.0))
                            * cfg.get("w_pair", np.nan)).where(frame["step"] >= warmup)
            if cfg.get("use_pair", True) else np.nan,
        }
        for key, values in weighted.items():
            frame[key] = values
    for key in WEIGHTED_KEYS:
        if key not in frame.columns:
            frame[key] = np.nan
        frame[key] = frame[key].where(frame[key] > 0)  # 0 = not active yet: nothing to draw on a log axis
    return frame.sort_values("step").reset_index(drop=True)


def _without_synthetic(path: Path) -> bool:
    """True for the log of a run that optimised nothing: an image whose budget share was 0, or a
    0-step run (variant start, the relabelling control of IDC), which has no curve to draw."""
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # read_condense_log reports the problem
    if not isinstance(log, dict) or log.get("steps"):
        return False
    zero_steps = (log.get("stopping") or {}).get("end_step") == 0 and (log.get("config") or {}).get("steps") == 0
    return log.get("n_synthetic") == 0 or zero_steps


def plot_loss_curves(
    log_json_paths: Sequence[str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    *,
    title: str = "Condensation losses",
    size_px: tuple[int, int] = (1000, 700),
    dpi: int = 100,
) -> Path:
    """Top left: the weighted terms as they enter the total loss (median over instances), so a
    reader sees which term drives the optimisation; then the instance, group and pair losses
    against step, one panel each.

    Up to `MAX_LABELLED_CURVES` logs are drawn as labelled lines; with more, every instance
    is a faint line and the median over instances is drawn on top. Panels whose values are all
    positive use a log scale. Logs of images whose budget share was 0 (no steps) are left out.
    """
    paths = [Path(p) for p in log_json_paths]
    if not paths:
        raise ValueError("no condensation logs to plot")
    paths = [p for p in paths if not _without_synthetic(p)]
    if not paths:
        raise ValueError("no condensation log of an image with synthetic patches to plot")
    logs = {p: read_condense_log(p) for p in paths}  # every file checked before drawing
    figure = new_figure(size_px, dpi)
    panels = figure.subplots(2, 2, sharex=True)
    many = len(logs) > MAX_LABELLED_CURVES
    weighted_axes = panels.flat[0]
    for k, key in enumerate(("loss", *WEIGHTED_KEYS)):
        table = pd.concat([f.set_index("step")[key].rename(str(p)) for p, f in logs.items()], axis=1)
        median = table.median(axis=1, skipna=True).dropna().sort_index()
        if not median.empty:
            label = "total loss" if key == "loss" else WEIGHTED_LABELS[key]
            weighted_axes.plot(median.index, median.to_numpy(), label=label, color=f"C{k}",
                               linewidth=2.2 if key == "loss" else 1.4, linestyle=":" if key == "loss" else "-")
    weighted_axes.set_yscale("log")
    weighted_axes.set_title("weighted terms of the total loss" + (" (median)" if len(logs) > 1 else ""), fontsize=10)
    weighted_axes.grid(True, alpha=0.3)
    weighted_axes.legend(fontsize=7, loc="lower right")
    for axes, key in zip(list(panels.flat)[1:], LOSS_KEYS[1:]):
        present = {p: f[["step", key]].dropna() for p, f in logs.items()}
        present = {p: f for p, f in present.items() if not f.empty}
        for path, frame in present.items():
            if many:
                axes.plot(frame["step"], frame[key], color="0.6", alpha=0.25, linewidth=0.6)
            else:
                axes.plot(frame["step"], frame[key], label=path.stem, linewidth=1.2)
        if many and present:
            table = pd.concat(
                [f.set_index("step")[key].rename(str(p)) for p, f in present.items()], axis=1
            )
            median = table.median(axis=1, skipna=True).sort_index()
            axes.plot(median.index, median.to_numpy(), color="C0", linewidth=1.8, label="median")
        values = pd.concat([f[key] for f in present.values()]) if present else pd.Series([])
        if len(values) and (values > 0).all():
            axes.set_yscale("log")
        if not present:
            axes.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(LOSS_TITLES[key], fontsize=10)
        axes.grid(True, alpha=0.3)
    for axes in panels[1]:
        axes.set_xlabel("step")
    handles, labels = panels.flat[1].get_legend_handles_labels()
    if handles:
        panels.flat[1].legend(fontsize=7, loc="upper right")
    suffix = f" ({len(logs)} instances)" if len(logs) > 1 else ""
    figure.suptitle(title + suffix)
    figure.subplots_adjust(left=0.08, right=0.97, bottom=0.08, top=0.9, hspace=0.25, wspace=0.2)
    return save_figure(figure, out_png, dpi)


# ---------------------------------------------------------------- the workflow's figure set


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


def plot_condensation_convergence(runs: Mapping[str, Sequence[Mapping]], out_png: str | os.PathLike[str],
                                  *, dpi: int = 110) -> Path:
    """Mean held-out MMD² and mean instance loss over the images of each condensation folder,
    against the step, with the warm-up end and the learning-rate decays marked."""
    from idc.condense.diagnostics import mean_curves  # imports torch: only this figure needs it

    fig = new_figure((1400, 520), dpi)
    ax_mmd, ax_loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    cfg = None
    for name, logs in runs.items():
        steps, mmd = mean_curves(list(logs))
        ax_mmd.plot(steps, mmd, label=name, linewidth=1.2)
        steps, loss = mean_curves(list(logs), key="loss_ins")
        ax_loss.plot(steps, loss, label=name, linewidth=1.2)
        cfg = logs[0]["config"]
    if cfg is not None:
        for ax in (ax_mmd, ax_loss):
            ax.axvline(cfg["warmup"], color="0.6", linestyle="--", linewidth=0.8)
            for m in cfg["milestones"]:
                ax.axvline(m, color="0.8", linestyle=":", linewidth=0.8)
    ax_mmd.set(title="held-out MMD² (mean over images)", xlabel="step", yscale="log")
    ax_loss.set(title="instance loss $L_{ins}$ (mean over images)", xlabel="step", yscale="log")
    ax_mmd.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi)
