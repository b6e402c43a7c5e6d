"""`python -m idc tables` / `figures`: through the package's command-line entry point."""

from __future__ import annotations

import json

import pandas as pd
from PIL import Image

from idc.cli import main


def metrics_file(tmp_path, name: str, psnr: float) -> str:
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(
        {"testset": ["Set5"] * 5, "image": [f"i{k}" for k in range(5)], "psnr": psnr, "ssim": 0.8}
    ).to_csv(path, index=False)
    return str(path)


def test_tables_from_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "method": "random",
                        "model": "edsr",
                        "path": metrics_file(tmp_path, "r", 29.0),
                    },
                    {"method": "idc", "model": "edsr", "path": metrics_file(tmp_path, "i", 30.0)},
                ],
                "tables": {
                    "table1": {
                        "methods": ["random", "idc"],
                        "models": ["edsr"],
                        "testsets": ["Set5"],
                        "title": "Table 1",
                    }
                },
            }
        )
    )
    assert main(["tables", "--manifest", str(manifest), "--out-dir", str(tmp_path / "t")]) == 0
    markdown = (tmp_path / "t" / "table1.md").read_text()
    assert "| IDC (ours) | **30.00** |" in markdown and "| Random | _29.00_ |" in markdown


def test_tables_from_entries_and_errors(tmp_path, capsys):
    out = tmp_path / "x"
    argv = ["tables", "--entry", "idc", "edsr", metrics_file(tmp_path, "i", 30.0)]
    argv += ["--methods", "idc", "--models", "edsr", "--testsets", "Set5", "--out", str(out)]
    assert main(argv + ["--reference", "table1"]) == 0
    assert "| IDC (ours) [paper] | 30.18 |" in (tmp_path / "x.md").read_text()
    assert main(argv[:-2] + ["--testsets", "Set14"] + ["--out", str(out)]) == 1
    assert "no results for test set 'Set14'" in capsys.readouterr().err
    assert main(["tables", "--manifest", str(tmp_path / "nope.json"), "--out-dir", "o"]) == 1


def test_figures_commands(tmp_path, capsys):
    curve = tmp_path / "trajectory.csv"
    pd.DataFrame({"step": [0, 100, 200], "psnr": [20.0, 24.0, 25.0]}).to_csv(curve, index=False)
    out = tmp_path / "t.png"
    assert main(["figures", "trajectories", "--curve", "IDC", str(curve), "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (800, 500)
    log = tmp_path / "0001.json"
    log.write_text(json.dumps({"steps": [{"step": 0, "loss": 1.0}, {"step": 10, "loss": 0.5}]}))
    assert main(["figures", "losses", "--log", str(log), "--out", str(tmp_path / "l.png")]) == 0
    assert (tmp_path / "l.png").stat().st_size > 0
    assert main(["figures", "losses", "--log", str(tmp_path / "no.json"), "--out", "x.png"]) == 1
    assert "condensation log not found" in capsys.readouterr().err
