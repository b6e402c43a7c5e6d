"""The condensation settings study: schedule scaling, study file checks, and a tiny study end to
end (condensations, downstream check, document)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from idc.condense.config import CondenseConfig
from idc.study.config import load_study, paper_schedule, setting_config

PROJECT = Path(__file__).resolve().parents[1]
SHARED_SET5 = PROJECT / ".." / "shared" / "data" / "Set5"


def test_paper_schedule_is_the_paper_at_20k_and_scales_proportionally() -> None:
    assert paper_schedule(20000) == {"steps": 20000, "warmup": 4000, "assign_interval": 400, "assign_times": 25,
                                     "milestones": [15000, 17000, 19000]}
    s = paper_schedule(1000)
    assert s["warmup"] == 200 and s["assign_interval"] == 20 and s["milestones"] == [750, 850, 950]
    cfg = CondenseConfig.from_dict(s)
    events = cfg.assignment_steps()
    assert len(events) == 26 and events[-1] < cfg.milestones[0]  # every event before the first decay


def _study(tmp_path: Path, **changes) -> Path:
    study = yaml.safe_load((PROJECT / "config" / "condensation-study.yaml").read_text())
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_the_shipped_study_file_is_valid_and_its_paper_setting_is_the_paper_at_mini_sizes() -> None:
    study = load_study(PROJECT / "config" / "condensation-study.yaml")
    paper = setting_config(study, "paper")
    assert paper["init"] == "random" and paper["w_pair"] == 300000.0 and paper["deformation"] == "affine"
    assert paper["milestones"] == [750, 850, 950] and paper["bn_mode"] == "batch"
    assert setting_config(study, "paper-long")["milestones"] == [2250, 2550, 2850]


def test_a_bad_setting_or_key_stops_before_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown key 'imagez'"):
        load_study(_study(tmp_path, imagez=3))
    with pytest.raises(ValueError, match="init"):
        load_study(_study(tmp_path, settings={"bad": {"init": "nois"}}))
    with pytest.raises(ValueError, match="downstream setting 'gone'"):
        load_study(_study(tmp_path, downstream={"settings": ["gone"]}))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_SET5 / "HR").is_dir(), reason="benchmark images (../shared/data/Set5) not present")
def test_a_tiny_study_runs_resumes_and_writes_its_document(tmp_path: Path) -> None:
    import json

    from idc.study.document import write_study_document
    from idc.study.run import run_study

    study = yaml.safe_load((PROJECT / "config" / "condensation-study.yaml").read_text())
    study.update(out=str(tmp_path / "out"), folder=str(SHARED_SET5 / "HR"), images=2, workers=1,
                 testset={"hr": str(SHARED_SET5 / "HR"), "lr": str(SHARED_SET5 / "LR_bicubic" / "X4")})
    study["teacher"]["train"].update(steps=2, val_every=2, checkpoint_every=2, milestones=[1])
    study["base"].update(steps=20, log_every=5)
    study["settings"] = {"paper": {}, "init-tiles": {"init": "tiles"}}
    study["downstream"].update(settings=["init-tiles"], replicates=1)
    study["downstream"]["model"]["train"].update(steps=2, val_every=2, checkpoint_every=2, milestones=[1])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    run_study(path)
    logs = sorted((tmp_path / "out" / "runs").rglob("*.json"))
    assert len(logs) == 4
    stamp = [p.stat().st_mtime_ns for p in logs]
    run_study(path)  # complete runs are not redone
    assert [p.stat().st_mtime_ns for p in logs] == stamp
    results = [json.loads(p.read_text()) for p in (tmp_path / "out" / "downstream" / "sr").glob("*/result.json")]
    assert sorted(r["label"] for r in results) == ["idc-init-tiles", "random"]
    idc = next(r for r in results if r["label"] == "idc-init-tiles")
    rnd = next(r for r in results if r["label"] == "random")
    assert rnd["pairs"] == idc["pairs"] > 0 and 5 < idc["psnr"] < 60  # equal budgets
    doc = write_study_document(path, tmp_path / "doc" / "study.md")
    text = doc.read_text()
    assert "| paper | (base) |" in text and "| init-tiles | init=tiles |" in text and "## Downstream check" in text
    assert (tmp_path / "doc" / "figures" / "study_patches.png").stat().st_size > 5_000
