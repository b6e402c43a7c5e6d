"""The record of a finished run: stage times summed from Snakemake benchmark files."""

import json

import yaml

from idc.report.results import stage_wall_times, summarise_run

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_stage_times_and_summary(tmp_path):
    results = tmp_path / "results" / "x"
    for rel, seconds in [("train_sr/a/edsr.tsv", 60.0), ("train_sr/b/edsr.tsv", 30.0), ("crop_patches.tsv", 6.0)]:
        path = results / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:00\t1\t1\t1\t1\t0\t0\t0\t1\n")
    assert stage_wall_times(results) == {"train_sr": (2, 90.0), "crop_patches": (1, 6.0)}
    (results / "tables").mkdir()
    (results / "tables" / "table1.md").write_text("| a | b |\n")
    (results / "datasets").mkdir()
    overall = {"n": 4, "exact_copies": 1, "mean_db": 30.0, "min_db": 25.0, "max_db": 35.0}
    (results / "datasets" / "idc.memorisation.json").write_text(json.dumps({"overall": overall}))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"run": "x", "seed": 3}))
    text = summarise_run(results, configfile=config, command="snakemake", repo=tmp_path)
    assert "| train_sr | 2 | 1.5 |" in text and "master seed 3" in text and "| a | b |" in text
    assert "| idc | 4 | 1 | 30.00 | 25.00 | 35.00 |" in text
