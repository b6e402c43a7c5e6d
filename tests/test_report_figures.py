"""Figures: right pixel size, patches actually drawn, inputs checked, atomic output."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from idc.report.figures import (
    patch_grid_size,
    plot_loss_curves,
    plot_patch_grid,
    plot_store_patches,
    plot_trajectories,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def solid(n: int, size: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (n, size, size, 3)).copy()


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def write_log(path, steps, scale=1.0, pair_from=None) -> str:
    records = []
    for s in steps:
        records.append(
            {
                "step": int(s),
                "loss": scale * 10 / (1 + s),
                "loss_ins": scale * 5 / (1 + s),
                "loss_group": 0.0 if s < 20 else scale / (1 + s),
                "loss_pair": None if pair_from is not None and s < pair_from else scale / (2 + s),
                "lr": 0.01,
                "seconds": 0.01,
            }
        )
    path.write_text(json.dumps({"n_real": 8, "n_synthetic": 1, "seed": 0, "steps": records}))
    return str(path)


def test_patch_grid_size_and_content(tmp_path):
    out = tmp_path / "grid.png"
    lr, hr = solid(5, 8, RED), solid(5, 32, BLUE)
    plot_patch_grid(lr, hr, out, "instance 0", columns=4, cell_px=32)
    pixels = read_png(out)
    # 5 patches in 4 columns: 2 grid rows, each an LR and an HR row of 32 px, plus 48 px title.
    assert patch_grid_size(5, True, columns=4, cell_px=32) == (128, 4 * 32 + 48)
    assert pixels.shape == (4 * 32 + 48, 128, 3)
    # Centre of the first LR cell is red, of the HR cell below it blue, of an unused cell white.
    assert tuple(pixels[48 + 16, 16]) == RED
    assert tuple(pixels[48 + 32 + 16, 16]) == BLUE
    assert tuple(pixels[48 + 2 * 32 + 16, 3 * 32 + 16]) == (255, 255, 255)
    assert os.listdir(tmp_path) == ["grid.png"]


def test_patch_grid_lr_only_and_max_patches(tmp_path):
    out = tmp_path / "lr.png"
    plot_patch_grid(solid(20, 8, RED), None, out, "lr only", max_patches=6, columns=3, cell_px=40)
    assert read_png(out).shape == (2 * 40 + 48, 3 * 40, 3)


@pytest.mark.parametrize(
    "lr, hr, message",
    [
        (np.zeros((2, 8, 8, 3), np.float32), None, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), None, "shape"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 32, 32, 3), np.uint8), "3 patches"),
    ],
)
def test_patch_grid_rejects_bad_input(tmp_path, lr, hr, message):
    with pytest.raises(ValueError, match=message):
        plot_patch_grid(lr, hr, tmp_path / "x.png", "bad")
    assert os.listdir(tmp_path) == []


def test_store_patches(tmp_path):
    store = tmp_path / "condensed.h5"
    with h5py.File(store, "w") as f:
        f["lr"] = np.concatenate([solid(3, 8, RED), solid(2, 8, BLUE)])
        f["hr"] = np.concatenate([solid(3, 32, RED), solid(2, 32, BLUE)])
        f["image_id"] = np.array([0, 0, 0, 7, 7])
    out = tmp_path / "figs" / "instance7.png"
    plot_store_patches(store, 7, out, columns=8, cell_px=32)
    pixels = read_png(out)
    assert pixels.shape == (2 * 32 + 48, 2 * 32, 3)  # only image 7's two patches
    assert tuple(pixels[48 + 16, 16]) == BLUE
    with pytest.raises(ValueError, match="image_id 3"):
        plot_store_patches(store, 3, tmp_path / "none.png")
    with pytest.raises(FileNotFoundError):
        plot_store_patches(tmp_path / "missing.h5", 0, tmp_path / "none.png")


def test_trajectories(tmp_path):
    steps = np.arange(0, 500, 25)
    curves = {
        "IDC": pd.DataFrame({"step": steps, "psnr": 26 + np.log1p(steps) / 10}),
        "Random": pd.DataFrame({"step": steps[::-1], "psnr": 25 + np.log1p(steps[::-1]) / 9}),
    }
    out = tmp_path / "trajectory.png"
    plot_trajectories(curves, out, "Set14", size_px=(640, 400))
    pixels = read_png(out)
    assert pixels.shape == (400, 640, 3)
    assert pixels.std() > 10  # something was drawn
    assert os.listdir(tmp_path) == ["trajectory.png"]
    with pytest.raises(ValueError, match="'bad' lacks column"):
        plot_trajectories({"bad": pd.DataFrame({"step": [1]})}, tmp_path / "b.png", "t")
    with pytest.raises(ValueError, match="no trajectories"):
        plot_trajectories({}, tmp_path / "b.png", "t")


def test_loss_curves_few_and_many(tmp_path):
    logs = [
        write_log(tmp_path / f"{i:04d}.json", range(0, 100, 10), 1 + i, pair_from=40)
        for i in range(3)
    ]
    out = tmp_path / "out" / "losses.png"
    plot_loss_curves(logs, out, size_px=(900, 600))
    assert read_png(out).shape == (600, 900, 3)
    many = [
        write_log(tmp_path / f"m{i:04d}.json", range(0, 100, 10), 1 + i / 10) for i in range(12)
    ]
    out_many = tmp_path / "out" / "losses_many.png"
    plot_loss_curves(many, out_many)
    assert read_png(out_many).shape == (700, 1000, 3)
    assert sorted(os.listdir(tmp_path / "out")) == ["losses.png", "losses_many.png"]


def test_loss_curves_reject_bad_logs_before_drawing(tmp_path):
    good = write_log(tmp_path / "good.json", range(0, 50, 10))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_real": 1, "steps": [{"loss": 1.0}]}))
    out = tmp_path / "out.png"
    with pytest.raises(ValueError, match="bad.json: steps\\[0\\] has no 'step'"):
        plot_loss_curves([good, bad], out)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        plot_loss_curves([broken], out)
    with pytest.raises(FileNotFoundError):
        plot_loss_curves([tmp_path / "missing.json"], out)
    assert not out.exists()


def test_loss_curves_leave_out_zero_step_runs(tmp_path):
    """A 0-step condensation (variant start) has no curve: it is left out, not an error."""
    import json

    from idc.report.figures import plot_loss_curves

    ran = tmp_path / "a.json"
    ran.write_text(json.dumps({"n_synthetic": 1, "steps": [{"step": 0, "loss": 1.0, "loss_ins": 1.0},
                                                           {"step": 10, "loss": 0.5, "loss_ins": 0.5}]}))
    start = tmp_path / "b.json"
    start.write_text(json.dumps({"n_synthetic": 1, "steps": [], "config": {"steps": 0},
                                 "stopping": {"end_step": 0}}))
    assert plot_loss_curves([ran, start], tmp_path / "losses.png").is_file()
