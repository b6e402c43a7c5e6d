"""The study's figures: its diagnostics over steps per setting (mean over the study images), and
the first study image's synthetic patches over steps per setting beside its real patches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from idc.study.config import study_image_ids
from idc.study.summary import setting_logs


def plot_study_figures(study: dict[str, Any], fig_dir: Path) -> list[Path]:
    """Diagnostic curves per setting (mean over images), and patch grids over steps."""
    from matplotlib import colormaps

    from idc.condense.diagnostics import DIAG_PREFIX
    from idc.report.figures import new_figure, save_figure

    colours = colormaps["tab20"]  # 20 distinct colours: one per setting
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = setting_logs(study)
    figure = new_figure((1400, 900), 100)
    keys = ["mmd", "colour_mean_gap", "diversity", "coverage_psnr"]
    titles = {"mmd": "MMD$^2$ (random-conv descriptors), lower is closer",
              "colour_mean_gap": "colour mean gap (pixels in [0,1])",
              "diversity": "diversity: mean pairwise RMS distance",
              "coverage_psnr": "coverage: real -> nearest synthetic PSNR (dB)"}
    panels = figure.subplots(2, 2)
    for axes, key in zip(panels.flat, keys):
        for k, (name, logs) in enumerate(runs.items()):
            if not logs:
                continue
            steps = [r["step"] for r in logs[0]["steps"] if DIAG_PREFIX + key in r]
            values = np.mean([[r[DIAG_PREFIX + key] for r in log["steps"] if DIAG_PREFIX + key in r][:len(steps)]
                              for log in logs], axis=0)
            axes.plot(steps, values, label=name, linewidth=1.2, color=colours(k % 20),
                      linestyle="--" if k % 2 else "-")
        if key == "mmd":
            axes.set_yscale("log")
        if key == "diversity" and runs:
            ref = np.mean([log["diagnostics"]["reference"]["real_diversity"] for logs in runs.values() for log in logs])
            axes.axhline(ref, color="k", linestyle=":", linewidth=1, label="real patches")
        axes.set_title(titles[key], fontsize=10)
        axes.set_xlabel("step")
        axes.grid(True, alpha=0.3)
    panels.flat[0].legend(fontsize=7, ncol=2)
    figure.suptitle(f"Condensation diagnostics over steps (mean over {study['images']} images)")
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.92, hspace=0.3, wspace=0.15)
    written = [save_figure(figure, fig_dir / "study_diagnostics.png", 100)]
    written.append(plot_snapshot_grid(study, fig_dir / "study_patches.png"))
    return written


def plot_snapshot_grid(study: dict[str, Any], out_png: Path) -> Path:
    """Rows: settings; columns: the first study image's synthetic patches at each snapshot step,
    then the image's real patches."""
    from idc.condense.stage import load_snapshots
    from idc.data.store import PatchStore
    from idc.report.figures import new_figure, save_figure

    out = Path(study["out"])
    store = PatchStore(out / "data" / "train_patches.h5")
    image_id = study_image_ids(out / "data" / "train_patches.h5", int(study["images"]))[0]
    names = [n for n in study["settings"] if (out / "runs" / n / f"{image_id:04d}.snapshots.npz").is_file()]
    if not names:
        raise ValueError(f"no snapshots under {out / 'runs'}")
    grids = {n: load_snapshots(out / "runs" / n / f"{image_id:04d}.snapshots.npz") for n in names}
    steps = grids[names[0]][0]
    k = grids[names[0]][1].shape[1]
    real = store.read_lr(store.indices_of_image(image_id))[:k]
    figure = new_figure((180 * (len(steps) + 1), 110 * (len(names)) + 60), 100)
    axes = figure.subplots(len(names), len(steps) + 1, squeeze=False)
    for r, name in enumerate(names):
        s, patches = grids[name]
        for c in range(len(steps) + 1):
            ax = axes[r][c]
            tiles = real if c == len(steps) else patches[c]
            ax.imshow(np.concatenate(list(tiles), axis=1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("real" if c == len(steps) else f"step {int(s[c])}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle(f"Synthetic LR patches of study image {image_id} over steps, per setting")
    figure.subplots_adjust(left=0.14, right=0.99, bottom=0.01, top=0.9, hspace=0.08, wspace=0.04)
    return save_figure(figure, out_png, 100)

