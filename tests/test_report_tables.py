"""Result tables: collecting per-image scores, best/second marking, delta layout, file output."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from idc.report.results import collect_results, read_results_csv
from idc.report.table_formats import tex_escape
from idc.report.table_layout import default_method_label, format_value, rank_marks
from idc.report.tables import TableSpec, make_tables, render_table, write_table

TESTSETS = ("Set5", "Set14")
MODELS = ("edsr", "swinir")


def results_frame(scores: dict[tuple[str, str, str], tuple[float, float]]) -> pd.DataFrame:
    """Long-format results from {(method, model, testset): (psnr, ssim)}."""
    sizes = {"Set5": 5, "Set14": 14, "Urban100": 100, "Manga109": 109, "BSD100": 100}
    return pd.DataFrame(
        [
            {"method": m, "model": mo, "testset": t, "psnr": p, "ssim": s, "n_images": sizes[t]}
            for (m, mo, t), (p, s) in scores.items()
        ]
    )


def md_rows(markdown: str, header_start: str) -> dict[str, list[str]]:
    """Row label -> cells of the Markdown table whose header begins with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header_start}"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def tex_rows(latex: str) -> dict[str, list[list[str]]]:
    """Row label -> cells, for every body row (one list per metric block)."""
    rows: dict[str, list[list[str]]] = {}
    for line in latex.splitlines():
        if line.endswith(r"\\") and not line.startswith((" ", "PSNR", "SSIM", "Method", "Variant")):
            cells = [c.strip() for c in line[:-2].split("&")]
            rows.setdefault(cells[0], []).append(cells[1:])
    return rows


def write_metrics(path, rows: list[tuple[str, str, float, float]]) -> str:
    frame = pd.DataFrame(rows, columns=["testset", "image", "psnr", "ssim"])
    frame.to_csv(path, index=False)
    return str(path)


# ---------------------------------------------------------------- ranking


def test_rank_marks_dense_ranking_with_ties():
    assert rank_marks([30.17, 30.52, 30.52, 30.49], "psnr", "best_second") == [
        "",
        "best",
        "best",
        "second",
    ]


def test_rank_marks_uses_shown_precision():
    # 30.5249 and 30.5201 both print as 30.52: a tie; 30.516 prints 30.52 too.
    assert rank_marks([30.5249, 30.5201, 30.514], "psnr", "best_second") == [
        "best",
        "best",
        "second",
    ]
    # SSIM is compared at 4 decimals: 0.86804 and 0.86796 both print 0.8680.
    assert rank_marks([0.86804, 0.86796, 0.8679], "ssim", "best_second") == [
        "best",
        "best",
        "second",
    ]


def test_rank_marks_ssim_higher_is_better_and_nan_ignored():
    assert rank_marks([0.8645, math.nan, 0.8680, 0.8679], "ssim", "best_second") == [
        "",
        "",
        "best",
        "second",
    ]


def test_rank_marks_all_equal_and_best_only():
    assert rank_marks([26.34, 26.34], "psnr", "best_second") == ["best", "best"]
    assert rank_marks([1.0, 3.0, 2.0], "psnr", "best") == ["", "best", ""]
    assert rank_marks([1.0, 3.0], "psnr", "none") == ["", ""]


def test_format_value_signs():
    assert format_value(0.06, "psnr", signed=True) == "+0.06"
    assert format_value(-0.0008, "ssim", signed=True) == "-0.0008"
    assert format_value(-0.001, "psnr", signed=True) == "0.00"  # no "-0.00"
    assert format_value(30.0, "psnr") == "30.00"
    assert format_value(math.nan, "ssim") == "–"


# ---------------------------------------------------------------- absolute layout


@pytest.fixture
def three_methods() -> pd.DataFrame:
    scores = {}
    # Column (Set5, edsr): idc best, random second, herding third.
    # Column (Set14, edsr): tie for best between random and idc, herding second.
    # SSIM of (Set5, swinir): herding best (higher SSIM), idc second.
    table = {
        "random": {("Set5", "edsr"): (30.13, 0.8639), ("Set14", "edsr"): (26.63, 0.7424),
                   ("Set5", "swinir"): (30.20, 0.8600), ("Set14", "swinir"): (26.68, 0.7469)},
        "herding": {("Set5", "edsr"): (29.94, 0.8607), ("Set14", "edsr"): (26.43, 0.7397),
                    ("Set5", "swinir"): (30.03, 0.8700), ("Set14", "swinir"): (26.54, 0.7439)},
        "idc": {("Set5", "edsr"): (30.18, 0.8644), ("Set14", "edsr"): (26.63, 0.7445),
                ("Set5", "swinir"): (30.34, 0.8650), ("Set14", "swinir"): (26.78, 0.7487)},
    }  # fmt: skip
    for method, cells in table.items():
        for (testset, model), value in cells.items():
            scores[(method, model, testset)] = value
    return results_frame(scores)


def render_three(frame: pd.DataFrame, **options):
    spec = TableSpec(
        methods=("random", "herding", "idc"), models=MODELS, testsets=TESTSETS,
        title="Table 1: test", **options,
    )  # fmt: skip
    return render_table(frame, spec)


def test_absolute_marks(three_methods):
    table = render_three(three_methods)
    marks = table.marks
    assert marks.at["idc", ("psnr", "Set5", "edsr")] == "best"
    assert marks.at["random", ("psnr", "Set5", "edsr")] == "second"
    assert marks.at["herding", ("psnr", "Set5", "edsr")] == ""
    assert marks.at["random", ("psnr", "Set14", "edsr")] == "best"
    assert marks.at["idc", ("psnr", "Set14", "edsr")] == "best"
    assert marks.at["herding", ("psnr", "Set14", "edsr")] == "second"
    assert marks.at["herding", ("ssim", "Set5", "swinir")] == "best"
    assert marks.at["idc", ("ssim", "Set5", "swinir")] == "second"
    assert marks.at["random", ("ssim", "Set5", "swinir")] == ""


def test_absolute_markdown_layout(three_methods):
    table = render_three(three_methods)
    psnr = md_rows(table.markdown, "PSNR (dB) ↑")
    ssim = md_rows(table.markdown, "SSIM ↑")
    header = next(line for line in table.markdown.splitlines() if line.startswith("| PSNR"))
    assert header == "| PSNR (dB) ↑ | Set5 EDSR | Set5 SwinIR | Set14 EDSR | Set14 SwinIR |"
    assert list(psnr) == ["Random", "Herding", "IDC (ours)"]
    assert psnr["IDC (ours)"] == ["**30.18**", "**30.34**", "**26.63**", "**26.78**"]
    assert psnr["Random"] == ["_30.13_", "_30.20_", "**26.63**", "_26.68_"]
    assert psnr["Herding"] == ["29.94", "30.03", "_26.43_", "26.54"]
    assert ssim["Herding"][1] == "**0.8700**"
    assert ssim["IDC (ours)"][1] == "_0.8650_"


def test_absolute_latex_layout(three_methods):
    latex = render_three(three_methods, label="tab:t1").latex
    assert r"\label{tab:t1}" in latex
    assert r"\begin{tabular}{lcccc}" in latex
    assert r"\multicolumn{2}{c}{Set5} & \multicolumn{2}{c}{Set14}" in latex
    rows = tex_rows(latex)
    psnr_idc, ssim_idc = rows["IDC (ours)"]
    assert psnr_idc == [r"\textbf{30.18}", r"\textbf{30.34}", r"\textbf{26.63}", r"\textbf{26.78}"]
    assert rows["Random"][0] == [
        r"\underline{30.13}",
        r"\underline{30.20}",
        r"\textbf{26.63}",
        r"\underline{26.68}",
    ]
    assert ssim_idc[1] == r"\underline{0.8650}"
    assert latex.count(r"\begin{table}") == 1 and latex.rstrip().endswith(r"\end{table}")


def test_reference_rows_are_shown_but_not_ranked(three_methods):
    # Our IDC run (its own id, 1 dB lower) sits below the published IDC row (30.18 on
    # Set5/EDSR); published rows are shown but not ranked, so Random stays best.
    own = three_methods.replace({"method": {"idc": "idc-2"}})
    own.loc[own["method"] == "idc-2", "psnr"] -= 1
    spec = TableSpec(
        methods=("random", "herding", "idc-2"), models=MODELS, testsets=TESTSETS, title="t",
        reference="table1", reference_methods={"idc": "idc-2"},
        method_labels={"idc-2": "IDC"},
    )  # fmt: skip
    table = render_table(own, spec)
    rows = md_rows(table.markdown, "PSNR (dB) ↑")
    assert rows["IDC [paper]"] == ["30.18", "30.34", "26.63", "26.78"]
    assert rows["Random [paper]"] == ["30.13", "30.20", "26.54", "26.68"]
    assert "Herding [paper]" in rows
    assert rows["Random"][0] == "**30.13**"  # best among our own rows only
    assert table.marks.loc[["paper:idc-2", "paper:random"]].eq("").all().all()


def test_side_by_side_metrics(three_methods):
    table = render_three(three_methods, metrics_layout="side_by_side")
    header = next(line for line in table.markdown.splitlines() if line.startswith("| Method"))
    assert header.startswith("| Method | Set5 EDSR PSNR | Set5 EDSR SSIM | Set5 SwinIR PSNR")


def test_method_labels_and_escaping(three_methods):
    table = render_three(three_methods, method_labels={"idc": "IDC_x & 10%"})
    assert "| IDC_x & 10% |" in table.markdown
    assert r"IDC\_x \& 10\% &" in table.latex
    assert tex_escape("a_b$") == r"a\_b\$"


def test_strict_checks(three_methods):
    incomplete = three_methods[
        ~((three_methods["method"] == "idc") & (three_methods["testset"] == "Set14")
          & (three_methods["model"] == "edsr"))
    ]  # fmt: skip
    with pytest.raises(ValueError, match="idc/edsr on Set14"):
        render_three(incomplete)
    uneven = three_methods.copy()
    uneven.loc[0, "n_images"] = 4
    with pytest.raises(ValueError, match="different numbers of images"):
        render_three(uneven)


def test_bad_orders_and_unknown_names(three_methods):
    def spec(methods, **options):
        return TableSpec(methods=methods, models=("edsr",), testsets=("Set5",), title="t", **options)

    with pytest.raises(ValueError, match="method 'dcsr'"):
        render_table(three_methods, spec(("dcsr",)))
    with pytest.raises(ValueError, match="more than once"):
        render_table(three_methods, spec(("idc", "idc")))
    with pytest.raises(ValueError, match="testsets_per_block"):
        render_table(three_methods, spec(("idc",), testsets_per_block=0))
    with pytest.raises(ValueError, match="layout"):
        render_three(three_methods, layout="relative")


# ---------------------------------------------------------------- delta layout


def test_delta_layout_signs_and_precision():
    frame = results_frame(
        {
            ("idc", "edsr", "Set5"): (30.02, 0.8616),
            ("idc-v1", "edsr", "Set5"): (8.31, 0.1010),
            ("idc-v4", "edsr", "Set5"): (30.08, 0.8623),
            ("idc-v5", "edsr", "Set5"): (30.0195, 0.86159),
        }
    )
    spec = TableSpec(
        methods=("idc", "idc-v1", "idc-v4", "idc-v5"),
        models=("edsr",),
        testsets=("Set5",),
        title="Table 2",
        layout="delta",
        method_labels={"idc": "IDC", "idc-v1": "v1", "idc-v4": "v4", "idc-v5": "v5"},
    )
    table = render_table(frame, spec)
    rows = md_rows(table.markdown, "Variant")
    assert rows["IDC"] == ["30.02", "0.8616"]
    assert rows["v1"] == ["-21.71", "-0.7606"]
    assert rows["v4"] == ["+0.06", "+0.0007"]
    assert rows["v5"] == ["0.00", "0.0000"]  # rounds to zero: no sign
    assert table.marks.eq("").all().all()  # the delta layout marks nothing by default
    assert table.values.at["idc-v4", ("psnr", "Set5", "edsr")] == pytest.approx(0.06)
    latex_rows = tex_rows(table.latex)
    assert latex_rows["v1"][0] == ["$-$21.71", "$-$0.7606"]
    assert latex_rows["v4"][0] == ["$+$0.06", "$+$0.0007"]


# ---------------------------------------------------------------- collecting scores


def test_collect_results_means_per_testset(tmp_path):
    a = write_metrics(
        tmp_path / "a.csv",
        [
            ("Set5", "baby", 30.0, 0.80),
            ("Set5", "bird", 32.0, 0.90),
            ("Set14", "lenna", 27.0, 0.70),
            ("Set5", "butterfly", 25.0, 0.70),
        ],
    )
    b = write_metrics(tmp_path / "b.csv", [("Set14", "lenna", 28.5, 0.75)])
    results = collect_results(
        [
            {"method": "idc", "model": "edsr", "path": a},
            {"method": "random", "model": "edsr", "path": b},
        ]
    )
    assert list(results.columns) == ["method", "model", "testset", "psnr", "ssim", "n_images"]
    row = results.set_index(["method", "testset"]).loc[("idc", "Set5")]
    assert row["psnr"] == pytest.approx(29.0)
    assert row["ssim"] == pytest.approx(0.8)
    assert row["n_images"] == 3
    assert results.set_index(["method", "testset"]).loc[("idc", "Set14"), "n_images"] == 1
    assert len(results) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("testset,image,psnr\nSet5,a,30\n", "missing column"),
        ("testset,image,psnr,ssim\n", "no image rows"),
        ("testset,image,psnr,ssim\nSet5,a,30,0.8\nSet5,a,31,0.8\n", "listed twice"),
        ("testset,image,psnr,ssim\nSet5,a,inf,0.8\n", "image 'a'"),
        ("testset,image,psnr,ssim\nSet5,a,30,\n", "ssim of image 'a'"),
    ],
)
def test_collect_results_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_results([{"method": "idc", "model": "edsr", "path": str(path)}])


def test_collect_results_rejects_bad_entries(tmp_path):
    good = write_metrics(tmp_path / "a.csv", [("Set5", "baby", 30.0, 0.8)])
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        collect_results([{"method": "idc", "model": "edsr", "path": str(tmp_path / "missing.csv")}])
    with pytest.raises(ValueError, match="given twice"):
        collect_results([{"method": "idc", "model": "edsr", "path": good}] * 2)
    with pytest.raises(ValueError, match="lacks key"):
        collect_results([{"method": "idc", "path": good}])


# ---------------------------------------------------------------- files


def test_long_csv_round_trip(tmp_path, three_methods):
    rng = np.random.default_rng(0)
    frame = three_methods.assign(psnr=three_methods["psnr"] + rng.random(len(three_methods)) / 3)
    spec = TableSpec(methods=("idc", "random", "herding"), models=MODELS, testsets=TESTSETS, title="t")
    paths = write_table(render_table(frame, spec), tmp_path / "table1")
    assert sorted(p.name for p in paths.values()) == ["table1.csv", "table1.html", "table1.md", "table1.tex"]
    back = read_results_csv(paths["csv"])
    assert list(back["method"].unique()) == ["idc", "random", "herding"]  # table order
    key = ["method", "model", "testset"]
    expected = frame.sort_values(key).reset_index(drop=True)
    got = back.sort_values(key).reset_index(drop=True)
    # Floats survive the text round trip exactly.
    assert got["psnr"].tolist() == expected["psnr"].tolist()
    assert got["ssim"].tolist() == expected["ssim"].tolist()
    assert got["n_images"].tolist() == expected["n_images"].tolist()
    assert sorted(os.listdir(tmp_path)) == ["table1.csv", "table1.html", "table1.md", "table1.tex"]


def test_make_tables_end_to_end(tmp_path):
    entries = []
    for method, offset in (("random", 0.0), ("idc", 0.1), ("idc-v1", -1.0)):
        rows = [("Set5", f"im{i}", 30.0 + offset + i / 10, 0.85 + offset / 100) for i in range(5)]
        rows += [("Set14", f"im{i}", 26.0 + offset, 0.75) for i in range(14)]
        path = write_metrics(tmp_path / f"{method}.csv", rows)
        entries.append({"method": method, "model": "edsr", "path": path})
    out = tmp_path / "tables"
    written = make_tables(
        entries=entries,
        out_dir=out,
        tables={
            "table1": {
                "methods": ["random", "idc"],
                "models": ["edsr"],
                "testsets": ["Set5", "Set14"],
                "title": "Table 1",
                "reference": "table1",
            },
            "table2": {
                "methods": ["idc", "idc-v1"],
                "models": ["edsr"],
                "testsets": ["Set5"],
                "title": "Table 2",
                "layout": "delta",
                "method_labels": {"idc": "IDC", "idc-v1": "v1"},
            },
        },
    )
    assert sorted(os.listdir(out)) == sorted(
        f"{n}.{s}" for n in ("table1", "table2") for s in ("csv", "md", "tex", "html")
    )
    assert set(written) == {"table1", "table2"}
    table1 = md_rows((out / "table1.md").read_text(), "PSNR (dB) ↑")
    assert table1["IDC (ours)"] == ["**30.30**", "**26.10**"]
    assert table1["Random"] == ["_30.20_", "_26.00_"]
    assert table1["IDC (ours) [paper]"] == ["30.18", "26.63"]
    table2 = md_rows((out / "table2.md").read_text(), "Variant")
    assert table2["v1"] == ["-1.10", "-0.0110"]
    assert len(read_results_csv(out / "table2.csv")) == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"], "title": "t", "colour": 1},
         "unknown key 'colour'"),
        ({"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"]}, "missing key 'title'"),
        ({"methods": "idc", "models": ["edsr"], "testsets": ["Set5"], "title": "t"}, "methods"),
        ({"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"], "title": "t",
          "layout": "relative"}, "layout"),
        ({"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"], "title": "t",
          "reference": "table3"}, "reference"),
        ({"methods": ["dcsr"], "models": ["edsr"], "testsets": ["Set5"], "title": "t"},
         "no results entry for method 'dcsr'"),
    ],
)  # fmt: skip
def test_make_tables_rejects_bad_specs_before_writing(tmp_path, spec, message):
    path = write_metrics(tmp_path / "m.csv", [("Set5", "a", 30.0, 0.8)])
    out = tmp_path / "tables"
    with pytest.raises(ValueError, match=message):
        make_tables(
            entries=[{"method": "idc", "model": "edsr", "path": path}],
            out_dir=out,
            tables={"good": {"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"],
                             "title": "t"}, "bad": spec},
        )  # fmt: skip
    assert not out.exists()


def test_make_tables_checks_every_entry(tmp_path):
    path = write_metrics(tmp_path / "m.csv", [("Set5", "a", 30.0, 0.8)])
    spec = {"methods": ["idc"], "models": ["edsr"], "testsets": ["Set5"], "title": "t"}
    entries = [{"method": "idc", "model": "edsr", "path": path}, {"method": "dcsr", "path": path}]
    with pytest.raises(ValueError, match="entry 1 lacks key"):
        make_tables(entries=entries, out_dir=tmp_path / "o", tables={"t": spec})


def test_default_method_labels():
    assert default_method_label("kcenter") == "Kcenter"
    assert default_method_label("idc-v3") == "v3"
    assert default_method_label("idc-a11") == "a11"
    assert default_method_label("idc-uswinir") == "idc-uswinir"


def test_html_table_has_the_markdown_cells_and_marks(tmp_path):
    """The HTML page (what the workflow report shows) carries the same numbers and marks."""
    from html.parser import HTMLParser

    entries = []
    for method, offset in (("random", 0.0), ("idc", 0.5), ("herding", 0.2)):
        path = write_metrics(tmp_path / f"{method}.csv", [("Set5", f"im{i}", 30.0 + offset, 0.8) for i in range(3)])
        entries.append({"method": method, "model": "edsr", "path": path})
    make_tables(entries=entries, out_dir=tmp_path / "t",
                tables={"t1": {"methods": ["random", "idc", "herding"], "models": ["edsr"],
                               "testsets": ["Set5"], "title": "A & B"}})

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.bold, self.second, self._cls = [], [], [], None
        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            if tag == "td":
                self._cls = dict(attrs).get("class")
            self._tag = tag
        def handle_data(self, data):
            if data.strip() and self.rows and self._tag in ("td", "b", "th"):
                self.rows[-1].append(data.strip())
                if self._tag == "b":
                    self.bold.append(data.strip())
                if self._cls == "second":
                    self.second.append(data.strip())

    parser = Cells()
    text = (tmp_path / "t" / "t1.html").read_text()
    parser.feed(text)
    assert "<title>A &amp; B</title>" in text
    body = {}  # the first block (PSNR) of each row
    for row in parser.rows:
        if row and row[0] in ("Random", "IDC (ours)", "Herding"):
            body.setdefault(row[0], row[1:])
    md = md_rows((tmp_path / "t" / "t1.md").read_text(), "PSNR (dB) ↑")
    assert set(body) == {"Random", "IDC (ours)", "Herding"}
    for label, cells in body.items():
        assert [c.strip("*_") for c in md[label]] == cells
    assert "30.50" in parser.bold and "30.20" in parser.second
