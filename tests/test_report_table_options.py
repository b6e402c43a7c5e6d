"""Table options of a config (mark, metrics_layout, testsets_per_block): the schema accepts what the
renderer does, and the make_table job passes them to the rendered files."""

from __future__ import annotations

import runpy
from types import SimpleNamespace

import pandas as pd
import pytest

from idc.config import ConfigError, load_config, validate_config
from idc.schema import load_schema
from tests.conftest import PROJECT_ROOT


def test_schema_choices_are_the_renderer_choices():
    from idc.report.tables import LAYOUTS, MARKINGS, METRICS_LAYOUTS

    table = load_schema()["$defs"]["table"]["properties"]
    assert tuple(table["layout"]["enum"]) == LAYOUTS
    assert tuple(table["metrics_layout"]["enum"]) == METRICS_LAYOUTS
    assert tuple(table["mark"]["enum"]) == MARKINGS
    assert table["testsets_per_block"] == {**table["testsets_per_block"], "type": "integer", "minimum": 1}


@pytest.mark.parametrize("key, value", [("mark", "bold"), ("metrics_layout", "cols"), ("testsets_per_block", 0)])
def test_bad_table_option_names_the_key(key, value):
    config = load_config(PROJECT_ROOT / "config" / "demo.yaml")
    config["tables"]["table1"][key] = value
    with pytest.raises(ConfigError, match=f"tables.table1.{key}"):
        validate_config(config)


def _make_table(config: dict, name: str, tmp_path) -> str:
    """The make_table job script on one table of `config`, every (dataset, model) scored alike
    except that the last dataset is best (30 dB) and the first second best (29 dB); returns the
    Markdown."""
    spec = config["tables"][name]
    pairs = [(d, m) for d in spec["datasets"] for m in spec["models"]]
    metrics = []
    for d, m in pairs:
        score = {spec["datasets"][0]: 1.0, spec["datasets"][-1]: 2.0}.get(d, 0.0)
        rows = [(t, f"im{i}", 28.0 + score, 0.80 + score / 100) for t in spec["testsets"] for i in range(2)]
        path = tmp_path / "metrics" / f"{d}-{m}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=["testset", "image", "psnr", "ssim"]).to_csv(path, index=False)
        metrics.append(str(path))
    out = tmp_path / "tables"
    # As the rule passes them: the paper-layout keys only, one (row, dataset, replicate, model)
    # entry per trained model.
    verdict_keys = ("kind", "compare_to", "whole", "contrasts", "bootstrap", "level")
    paper_spec = {k: v for k, v in spec.items() if k not in verdict_keys}
    entries = [(d, d, 0, m) for d, m in pairs]
    snakemake = SimpleNamespace(
        params=SimpleNamespace(spec=paper_spec, entries=entries), input=SimpleNamespace(metrics=metrics),
        output=SimpleNamespace(csv=str(out / f"{name}.csv")), wildcards=SimpleNamespace(table=name),
        log=[str(tmp_path / f"{name}.log")],
    )
    script = PROJECT_ROOT / "workflow" / "scripts" / "make_table.py"
    runpy.run_path(str(script), init_globals={"snakemake": snakemake})
    return (out / f"{name}.md").read_text()


def test_paper_tables_take_their_layout_from_the_config(tmp_path):
    """config/config.yaml sets Table 8's side-by-side metrics and Table 5's best-only marks in
    blocks of 3 test sets, as the paper prints them; the rendered tables show them."""
    config = load_config(PROJECT_ROOT / "config" / "config.yaml")
    table8 = _make_table(config, "table8", tmp_path / "t8")
    assert "| Method | Set5 PSNR | Set5 SSIM | Set14 PSNR" in table8  # one model: no model name

    table5 = _make_table(config, "table5", tmp_path / "t5")
    headers = [line for line in table5.splitlines() if line.startswith("| PSNR")]
    assert len(headers) == 2 and "Urban100" in headers[1] and "Urban100" not in headers[0]  # 3 + 2
    assert "**30.00**" in table5 and "_29.00_" not in table5  # best marked, no second best

    # The same table without the options: the absolute layout's own choices.
    for key in ("mark", "testsets_per_block"):
        del config["tables"]["table5"][key]
    plain = _make_table(config, "table5", tmp_path / "plain")
    assert len([line for line in plain.splitlines() if line.startswith("| PSNR")]) == 1
    assert "_29.00_" in plain
