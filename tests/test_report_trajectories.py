"""The run record's validation trajectories: a row is the mean and range over its replicates."""

from __future__ import annotations

import pandas as pd
import pytest

from idc.report.results import trajectory_markdown, trajectory_rows


def test_rows_average_their_replicates_step_by_step(tmp_path):
    datasets = {"whole": {"replicate_of": None}, "random": {"replicate_of": "random"},
                "random-s1": {"replicate_of": "random"}}
    for name, psnr in (("whole", [27.0, 27.4]), ("random", [26.8, 26.6]), ("random-s1", [27.0, 26.8])):
        folder = tmp_path / "sr" / name / "edsr"
        folder.mkdir(parents=True)
        pd.DataFrame({"step": [100, 200], "psnr": psnr}).to_csv(folder / "trajectory.csv", index=False)
    frame = trajectory_rows(tmp_path, datasets, ["whole", "random"], "edsr").set_index(["step", "row"])
    assert frame.loc[(200, "random"), "mean"] == pytest.approx(26.7)
    assert (frame.loc[(200, "random"), "low"], frame.loc[(200, "random"), "high"]) == (26.6, 26.8)
    assert frame.loc[(100, "whole"), "n"] == 1
    lines = trajectory_markdown(trajectory_rows(tmp_path, datasets, ["whole", "random"], "edsr"),
                                ["whole", "random"], "edsr")
    assert lines[0] == "| step (edsr) | whole | random |"
    assert lines[-1] == "| 200 | 27.40 | 26.70 [26.60, 26.80] |"
    assert trajectory_rows(tmp_path, datasets, ["whole"], "swinir").empty
