"""A table row with several replicates is their mean; replicates tested on other images are refused."""

from __future__ import annotations

import pandas as pd
import pytest

from idc.report.results import collect_results


def _metrics(path, values, images=("a", "b")):
    pd.DataFrame({"testset": "T", "image": list(images), "psnr": values, "ssim": [0.5] * len(images)}).to_csv(
        path, index=False)
    return str(path)


def test_row_is_the_mean_over_its_replicates(tmp_path):
    entries = [
        {"method": "random", "model": "edsr", "replicate": 0, "path": _metrics(tmp_path / "0.csv", [30.0, 28.0])},
        {"method": "random", "model": "edsr", "replicate": 1, "path": _metrics(tmp_path / "1.csv", [31.0, 29.0])},
        {"method": "whole", "model": "edsr", "path": _metrics(tmp_path / "w.csv", [32.0, 30.0])},
    ]
    frame = collect_results(entries).set_index("method")
    assert frame.loc["random", "psnr"] == pytest.approx(29.5)
    assert frame.loc["random", "n_images"] == 2
    assert frame.loc["whole", "psnr"] == pytest.approx(31.0)


def test_replicates_must_share_their_test_images_and_numbers(tmp_path):
    a = _metrics(tmp_path / "0.csv", [30.0, 28.0])
    b = _metrics(tmp_path / "1.csv", [31.0, 29.0], images=("a", "c"))
    with pytest.raises(ValueError, match="replicate 1 was tested on other images"):
        collect_results([{"method": "r", "model": "m", "replicate": 0, "path": a},
                         {"method": "r", "model": "m", "replicate": 1, "path": b}])
    with pytest.raises(ValueError, match="replicate 0 given twice"):
        collect_results([{"method": "r", "model": "m", "replicate": 0, "path": a},
                         {"method": "r", "model": "m", "path": a}])
