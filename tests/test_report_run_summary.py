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
    # a 0-step condensation keeps its real starting patches: every one an exact copy, no finite PSNR
    copies = {"n": 3, "exact_copies": 3, "mean_db": None, "min_db": None, "max_db": None}
    (results / "datasets" / "idc-start.memorisation.json").write_text(json.dumps({"overall": copies}))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"run": "x", "seed": 3}))
    text = summarise_run(results, configfile=config, command="snakemake", repo=tmp_path)
    assert "| train_sr | 2 | 1.5 |" in text and "master seed 3" in text and "| a | b |" in text
    assert "| idc | 4 | 1 | 30.00 | 25.00 | 35.00 |" in text
    assert "| idc-start | 3 | 3 | – | – | – |" in text


def _condense_log(image_id, mmd_curve, *, warmup=2, milestones=(6,), steps=8, seconds=10.0):
    """A per-image condensation log as the stage writes it, with a held-out MMD² curve."""
    records = [{"step": s, "diag_mmd": v, "loss_ins": v / 10} for s, v in mmd_curve]
    final = {"mmd": mmd_curve[-1][1], "colour_mean_gap": 0.01, "colour_std_gap": 0.02, "diversity": 0.3,
             "nearest_psnr": 16.0, "coverage_psnr": 14.0}
    return {"image_id": image_id, "seconds": seconds, "steps": records,
            "config": {"warmup": warmup, "milestones": list(milestones), "steps": steps},
            "stopping": {"end_step": steps},
            "diagnostics": {"initial": {**final, "mmd": mmd_curve[0][1]}, "final": final}}


def test_condensation_convergence_rows_pairs_and_figure(tmp_path):
    from idc.report.results import convergence_rows, paired_mmd_difference, read_condensation_logs

    results = tmp_path / "results" / "x"
    # a: falls to a plateau at step 4; b: the same images, a constant 0.1 higher at the end
    curves = {"a_r0.1_s0": [(0, 1.0), (2, 0.5), (4, 0.2), (6, 0.2), (7, 0.2)],
              "b_r0.1_s0": [(0, 1.0), (2, 0.6), (4, 0.4), (6, 0.31), (7, 0.3)]}
    for name, curve in curves.items():
        folder = results / "condense" / name
        folder.mkdir(parents=True)
        for image_id in (0, 1):
            (folder / f"img_{image_id}.json").write_text(json.dumps(_condense_log(image_id, curve)))
    runs = read_condensation_logs(results / "condense")
    rows = {r["run"]: r for r in convergence_rows(runs)}
    a = rows["a_r0.1_s0"]
    assert a["images"] == 2 and a["mmd"] == 0.2 and a["mmd_std"] == 0.0
    assert a["mmd_initial"] == 1.0 and a["mmd_warmup_end"] == 0.5 and a["mmd_first_decay"] == 0.2
    assert a["mmd_settling_step"] == 4 and a["decay_phase_change"] == 0.0
    assert rows["b_r0.1_s0"]["decay_phase_change"] < 0
    diff = paired_mmd_difference(runs, "b_r0.1_s0", "a_r0.1_s0")
    assert diff["images"] == 2 and abs(diff["mean"] - 0.1) < 1e-12 and diff["std"] < 1e-12
    assert paired_mmd_difference(runs, "a_r0.1_s0", "missing") is None

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"run": "x", "seed": 0}))
    text = summarise_run(results, configfile=config, command="snakemake", repo=tmp_path,
                         figures_dir=tmp_path / "docs" / "figures", link_base=tmp_path / "docs")
    assert "### Condensation convergence" in text and "| `a_r0.1_s0` | 2 | 8 | 1.0000 |" in text
    assert "](figures/condense_convergence.png)" in text
    assert (tmp_path / "docs" / "figures" / "condense_convergence.png").stat().st_size > 0
