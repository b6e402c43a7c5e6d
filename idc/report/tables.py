"""Result tables laid out like the paper's, as CSV, Markdown, LaTeX and HTML.

`make_tables` is the stage entry point: one call gathers every metrics file once and writes
`<out_dir>/<name>.csv` (long format: `method, model, testset, psnr, ssim, n_images`), `.md`,
`.tex` and `.html` (the page `snakemake --report` shows) for each requested table. A table is
described by a `TableSpec` and drawn by `render_table`.

Two layouts:
- "absolute" (Tables 1, 5, 8): rows are methods, columns test sets x models, the score in
  each cell; best and second best per column marked (Markdown **bold** / _italic_, LaTeX
  \\textbf / \\underline, HTML bold / underlined). PSNR and SSIM either as separate blocks
  (`metrics_layout="blocks"`, Table 1) or side by side under each test set (`"side_by_side"`,
  Table 8).
- "delta" (Tables 2, 4, 7): the first method is the reference row with absolute scores; every
  other row shows its signed difference to it.

Ranking uses the rounded numbers a reader sees: two methods showing 30.52 tie, both are
"best", and the next lower shown value is "second best" (dense ranking). Both metrics are
higher-is-better.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from idc import __version__
from idc.atomic import atomic_write_text
from idc.report.paper_reference import PAPER_TABLES, paper_table
from idc.report.results import (
    METRICS,
    collect_results,
    normalise_results,
    results_to_csv_text,
    validate_entries,
)

logger = logging.getLogger(__name__)

Layout = Literal["absolute", "delta"]
MetricsLayout = Literal["blocks", "side_by_side"]
Marking = Literal["best_second", "best", "none"]

LAYOUTS = ("absolute", "delta")
METRICS_LAYOUTS = ("blocks", "side_by_side")
MARKINGS = ("best_second", "best", "none")

DECIMALS = {"psnr": 2, "ssim": 4}
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM"}
METRIC_SHORT = {"psnr": "PSNR", "ssim": "SSIM"}
MODEL_LABELS = {
    "edsr": "EDSR",
    "swinir": "SwinIR",
    "mambairv2": "MambaIRv2",
    "mambairv2_light": "MambaIRv2-light",
}
METHOD_LABELS = {
    "whole": "Whole",
    "random": "Random",
    "herding": "Herding",
    "kcenter": "Kcenter",
    "dcsr": "DCSR",
    "idc": "IDC (ours)",
}
MISSING = "–"
# Label of the published rows, and the prefix of their row ids (`paper:<method>`).
REFERENCE_LABEL = "paper"


# ---------------------------------------------------------------- what a table shows


@dataclass(frozen=True)
class TableSpec:
    """What one table shows. Keys of a spec mapping are these field names.

    `reference`: name of a published table (`table1`, `table2`, `table4`, `table5`, `table7`,
    `table8`) whose numbers are added as unranked rows; `reference_methods` maps the paper's
    method ids (see `idc.report.paper_reference`) to the ids used in this run where they differ.
    `metrics_layout` defaults to "blocks" for "absolute" and "side_by_side" for "delta";
    `mark` to "best_second" for "absolute" and "none" for "delta". `label` is the LaTeX label.
    `testsets_per_block`: cut the columns into row blocks of this many test sets (the paper
    prints Table 1 as 3 + 2 test sets per metric); None keeps every test set in one block.
    """

    methods: tuple[str, ...]
    models: tuple[str, ...]
    testsets: tuple[str, ...]
    title: str
    layout: str = "absolute"
    metrics_layout: str | None = None
    mark: str | None = None
    method_labels: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    reference: str | None = None
    reference_methods: Mapping[str, str] = field(default_factory=dict)
    testsets_per_block: int | None = None

    @classmethod
    def from_mapping(cls, name: str, spec: Mapping[str, object]) -> TableSpec:
        """Check a spec mapping; errors name the table and the key."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"table {name!r}: spec must be a mapping, got {spec!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"table {name!r}: unknown key {unknown[0]!r}")
        for key in ("methods", "models", "testsets", "title"):
            if key not in spec:
                raise ValueError(f"table {name!r}: missing key {key!r}")
        lists = {}
        for key in ("methods", "models", "testsets"):
            value = spec[key]
            if isinstance(value, str) or not isinstance(value, Sequence) or not value:
                raise ValueError(f"table {name!r}: {key} must be a non-empty list")
            lists[key] = tuple(str(v) for v in value)
        for key in ("method_labels", "reference_methods"):
            if key in spec and not isinstance(spec[key], Mapping):
                raise ValueError(f"table {name!r}: {key} must be a mapping")
        table = cls(
            **lists,
            title=str(spec["title"]),
            layout=str(spec.get("layout") or "absolute"),
            metrics_layout=spec.get("metrics_layout"),  # type: ignore[arg-type]
            mark=spec.get("mark"),  # type: ignore[arg-type]
            method_labels={
                str(k): str(v) for k, v in dict(spec.get("method_labels") or {}).items()
            },
            label=str(spec.get("label") or f"tab:{name}"),
            reference=spec.get("reference"),  # type: ignore[arg-type]
            testsets_per_block=spec.get("testsets_per_block"),  # type: ignore[arg-type]
            reference_methods={
                str(k): str(v) for k, v in dict(spec.get("reference_methods") or {}).items()
            },
        )
        try:
            table.check()
        except ValueError as err:
            raise ValueError(f"table {name!r}: {err}") from None
        return table

    def check(self) -> None:
        """Orders without repeats, known choices, a positive block width, a known reference."""
        for key in ("methods", "models", "testsets"):
            order = getattr(self, key)
            if isinstance(order, str) or not isinstance(order, Sequence) or not order:
                raise ValueError(f"{key} must be a non-empty list, got {order!r}")
            items = [str(x) for x in order]
            repeated = sorted({x for x in items if items.count(x) > 1})
            if repeated:
                raise ValueError(f"{key} lists {', '.join(repeated)} more than once")
        choices = {"layout": LAYOUTS, "metrics_layout": METRICS_LAYOUTS, "mark": MARKINGS}
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value is not None and value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        block = self.testsets_per_block
        if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
            raise ValueError(f"testsets_per_block must be a positive integer, got {block!r}")
        if self.reference is not None and self.reference not in PAPER_TABLES:
            raise ValueError(
                f"reference must be one of {', '.join(PAPER_TABLES)}, got {self.reference!r}"
            )

    def reference_frame(self) -> pd.DataFrame | None:
        if self.reference is None:
            return None
        frame = paper_table(self.reference)
        if self.reference_methods:
            frame["method"] = frame["method"].replace(dict(self.reference_methods))
        return frame


# ---------------------------------------------------------------- shown numbers and marks


def default_method_label(method: str) -> str:
    """Display name of a method id: the paper's spelling, or an ablation's variant name."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    match = re.fullmatch(r"idc-([vax]\d+)", method)
    return match.group(1) if match else method


def format_value(value: float, metric: str, *, signed: bool = False) -> str:
    """A score as printed: PSNR with 2 decimals, SSIM with 4; `signed` for differences."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    decimals = DECIMALS[metric]
    if not signed:
        return f"{value:.{decimals}f}"
    text = f"{value:+.{decimals}f}"
    # A difference that rounds to zero is shown without a sign, never as "-0.00".
    return text[1:] if float(text) == 0 else text


def rank_marks(values: Sequence[float], metric: str, marking: Marking) -> list[str]:
    """Per value "best", "second" or "" by dense ranking of the shown (rounded) numbers."""
    if marking == "none":
        return [""] * len(values)
    shown = [None if v is None or math.isnan(v) else float(format_value(v, metric)) for v in values]
    distinct = sorted({s for s in shown if s is not None}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 and marking == "best_second" else None
    marks = []
    for s in shown:
        if s is not None and s == best:
            marks.append("best")
        elif s is not None and s == second:
            marks.append("second")
        else:
            marks.append("")
    return marks


# ---------------------------------------------------------------- laying a table out


@dataclass(frozen=True)
class Row:
    """A table row: `row_id` keys the value frames, `label` is printed."""

    row_id: str
    label: str
    is_reference: bool


@dataclass(frozen=True)
class TableLayout:
    """Everything the Markdown, LaTeX and HTML writers need: rows, columns, shown values, marks."""

    title: str
    label: str
    columns: pd.MultiIndex
    metrics_layout: str
    rows: list[Row]
    shown: pd.DataFrame
    marks: pd.DataFrame
    signed: dict[str, bool]
    layout: str
    mark: str
    testsets_per_block: int | None

    def blocks(self) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
        """(metric of the block or None, its columns) in display order."""
        if self.metrics_layout == "blocks":
            blocks = [(m, [c for c in self.columns if c[0] == m]) for m in METRICS]
        else:
            blocks = [(None, list(self.columns))]
        if not self.testsets_per_block:
            return blocks
        # Wide tables are cut into row blocks of a few test sets each, as in the paper.
        out = []
        for metric, columns in blocks:
            testsets = list(dict.fromkeys(c[1] for c in columns))
            for start in range(0, len(testsets), self.testsets_per_block):
                chunk = set(testsets[start : start + self.testsets_per_block])
                out.append((metric, [c for c in columns if c[1] in chunk]))
        return out

    def corner(self, metric: str | None) -> str:
        """Text above the row labels of a block: its metric, else what the rows are."""
        if metric:
            return f"{METRIC_LABELS[metric]} ↑"
        return "Variant" if self.layout == "delta" else "Method"

    def header_levels(
        self, block_columns: list[tuple[str, str, str]]
    ) -> list[list[tuple[str, int]]]:
        """Header rows as (text, span) groups; levels that never vary are left out."""
        models = {c[2] for c in self.columns}
        levels = [1]  # test set is always shown
        if len(models) > 1:
            levels.append(2)
        if self.metrics_layout == "side_by_side":
            levels.append(0)
        out = []
        for depth, level in enumerate(levels):
            groups: list[tuple[str, int]] = []
            previous = None
            for column in block_columns:
                key = tuple(column[lv] for lv in levels[: depth + 1])
                if key == previous:
                    groups[-1] = (groups[-1][0], groups[-1][1] + 1)
                else:
                    groups.append((_level_text(level, column[level]), 1))
                previous = key
            out.append(groups)
        return out

    def cell(self, row: Row, column: tuple[str, str, str]) -> tuple[str, str]:
        value = self.shown.at[row.row_id, column]
        text = format_value(value, column[0], signed=self.signed[row.row_id])
        return text, self.marks.at[row.row_id, column]


def _level_text(level: int, value: str) -> str:
    if level == 0:
        return METRIC_SHORT[value]
    if level == 2:
        return MODEL_LABELS.get(value, value)
    return value


def _provenance() -> str:
    return f"generated by idc-workflow {__version__} (idc.report)"


def _columns(
    testsets: Sequence[str], models: Sequence[str], metrics_layout: MetricsLayout
) -> pd.MultiIndex:
    if metrics_layout == "blocks":
        tuples = [(m, t, mo) for m in METRICS for t in testsets for mo in models]
    else:
        tuples = [(m, t, mo) for t in testsets for mo in models for m in METRICS]
    return pd.MultiIndex.from_tuples(tuples, names=["metric", "testset", "model"])


def _wide(frame: pd.DataFrame, methods: Sequence[str], columns: pd.MultiIndex) -> pd.DataFrame:
    indexed = frame.set_index(["method", "model", "testset"])
    data = {}
    for metric, testset, model in columns:
        data[(metric, testset, model)] = [
            (
                float(indexed.at[(method, model, testset), metric])
                if (method, model, testset) in indexed.index
                else math.nan
            )
            for method in methods
        ]
    wide = pd.DataFrame(data, index=list(methods))
    wide.columns = columns
    return wide


def _delta(wide: pd.DataFrame, baseline: str) -> pd.DataFrame:
    shown = wide.copy()
    others = [r for r in wide.index if r != baseline]
    shown.loc[others] = wide.loc[others] - wide.loc[baseline]
    return shown


def _rows_shown(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    return frame[
        frame["method"].isin(spec.methods)
        & frame["model"].isin(spec.models)
        & frame["testset"].isin(spec.testsets)
    ]


def select_results(results: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The rows of `results` a table uses, in the table's method/model/test set order."""
    frame = _rows_shown(normalise_results(results), spec).copy()
    order = {
        "method": {m: i for i, m in enumerate(spec.methods)},
        "model": {m: i for i, m in enumerate(spec.models)},
        "testset": {t: i for i, t in enumerate(spec.testsets)},
    }
    frame = frame.sort_values(
        ["method", "model", "testset"], key=lambda column: column.map(order[column.name])
    )
    return frame.reset_index(drop=True)


def check_results(frame: pd.DataFrame, spec: TableSpec) -> None:
    """Every (method, model, test set) cell of the table has a result, and every method is
    scored on the same number of images of a test set (else a metrics file is incomplete)."""
    for name, column, wanted in (
        ("method", "method", spec.methods),
        ("model", "model", spec.models),
        ("test set", "testset", spec.testsets),
    ):
        absent = [w for w in wanted if w not in set(frame[column])]
        if absent:
            raise ValueError(f"no results for {name} {absent[0]!r}")
    shown = _rows_shown(frame, spec)
    present = set(zip(shown["method"], shown["model"], shown["testset"]))
    for method in spec.methods:
        for model in spec.models:
            for testset in spec.testsets:
                if (method, model, testset) not in present:
                    raise ValueError(f"no result for {method}/{model} on {testset}")
    known = shown.dropna(subset=["n_images"])
    for testset, group in known.groupby("testset", sort=False):
        if group["n_images"].astype(int).nunique() > 1:
            detail = ", ".join(
                f"{r.method}/{r.model}: {int(r.n_images)}" for r in group.itertuples()
            )
            raise ValueError(
                f"{testset}: results cover different numbers of images ({detail}); "
                "a metrics file is incomplete"
            )


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedTable:
    """A table rendered for reading and its long-format CSV.

    `values`: the numbers shown (differences already taken in the delta layout), rows by row
    id (method, or `paper:<method>` for reference rows), columns a MultiIndex
    (metric, testset, model). `marks`: same shape, "best", "second" or "".
    """

    markdown: str
    latex: str
    html: str
    csv: str
    values: pd.DataFrame
    marks: pd.DataFrame


def render_table(results: pd.DataFrame, spec: TableSpec) -> RenderedTable:
    """Render long-format results (`method, model, testset, psnr, ssim[, n_images]`) as the
    table `spec` describes (see the module docstring).

    Refuses results with an empty cell or whose test sets were scored on different numbers of
    images. The reference's methods absent from the published table get no reference row.
    """
    spec.check()
    methods, models, testsets = (
        [str(x) for x in order] for order in (spec.methods, spec.models, spec.testsets)
    )
    layout = spec.layout
    metrics_layout = spec.metrics_layout or ("blocks" if layout == "absolute" else "side_by_side")
    mark = spec.mark or ("best_second" if layout == "absolute" else "none")
    labels = {m: default_method_label(m) for m in methods}
    labels.update(dict(spec.method_labels))

    frame = normalise_results(results)
    check_results(frame, spec)
    columns = _columns(testsets, models, metrics_layout)
    wide = _wide(_rows_shown(frame, spec), methods, columns)
    rows = [Row(m, labels[m], False) for m in methods]

    ref_wide = None
    reference = spec.reference_frame()
    if reference is not None:
        ref = _rows_shown(normalise_results(reference), spec)
        ref_methods = [m for m in methods if m in set(ref["method"])]
        if layout == "delta" and ref_methods and ref_methods[0] != methods[0]:
            raise ValueError(
                f"reference lacks the baseline method {methods[0]!r} that the delta layout needs"
            )
        if ref_methods:
            ref_wide = _wide(ref, ref_methods, columns)
            ref_wide.index = [f"{REFERENCE_LABEL}:{m}" for m in ref_methods]
            rows += [
                Row(f"{REFERENCE_LABEL}:{m}", f"{labels[m]} [{REFERENCE_LABEL}]", True)
                for m in ref_methods
            ]

    # Ranks come from absolute values of our own rows only; reference rows are context.
    marks = pd.DataFrame("", index=[r.row_id for r in rows], columns=columns)
    for column in columns:
        marks.loc[methods, column] = rank_marks(list(wide[column]), column[0], mark)  # type: ignore[arg-type]

    shown = _delta(wide, methods[0]) if layout == "delta" else wide
    if ref_wide is not None:
        ref_shown = _delta(ref_wide, ref_wide.index[0]) if layout == "delta" else ref_wide
        shown = pd.concat([shown, ref_shown])
    baseline_rows = {methods[0]} | ({ref_wide.index[0]} if ref_wide is not None else set())
    signed = {r.row_id: layout == "delta" and r.row_id not in baseline_rows for r in rows}

    laid_out = TableLayout(
        spec.title,
        spec.label,
        columns,
        metrics_layout,
        rows,
        shown,
        marks,
        signed,
        layout,
        mark,
        spec.testsets_per_block,
    )
    return RenderedTable(
        markdown=to_markdown(laid_out),
        latex=to_latex(laid_out),
        html=to_html(laid_out),
        csv=results_to_csv_text(select_results(frame, spec)),
        values=shown,
        marks=marks,
    )


# ---------------------------------------------------------------- Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(text: str, mark: str) -> str:
    if text == MISSING or not mark:
        return text
    return f"**{text}**" if mark == "best" else f"_{text}_"


def to_markdown(table: TableLayout) -> str:
    lines = [f"<!-- {_provenance()} -->", f"**{_md_escape(table.title)}**", ""]
    for metric, block_columns in table.blocks():
        levels = table.header_levels(block_columns)
        # Markdown has one header row: join the levels of each column into one label.
        headers = []
        for i in range(len(block_columns)):
            parts = []
            for groups in levels:
                position = 0
                for text, span in groups:
                    if position <= i < position + span:
                        parts.append(text)
                    position += span
            headers.append(" ".join(parts))
        lines.append("| " + " | ".join([table.corner(metric), *map(_md_escape, headers)]) + " |")
        lines.append("| :-- | " + " | ".join(["--:"] * len(block_columns)) + " |")
        for row in table.rows:
            cells = [_md_cell(*table.cell(row, c)) for c in block_columns]
            lines.append("| " + " | ".join([_md_escape(row.label), *cells]) + " |")
        lines.append("")
    notes = []
    if table.mark == "best_second":
        notes.append("**bold**: best, _italic_: second best")
    elif table.mark == "best":
        notes.append("**bold**: best")
    if table.layout == "delta":
        notes.append("first row absolute, other rows difference to it")
    if any(r.is_reference for r in table.rows):
        notes.append("rows in [brackets]: published numbers, not ranked")
    if notes:
        lines.append("; ".join(notes) + ".")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- LaTeX

_TEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(ch, ch) for ch in text)


def _tex_cell(text: str, mark: str, signed: bool) -> str:
    if text == MISSING:
        return "--"
    if signed and text[0] in "+-":
        # Typeset the sign as a math sign, not a hyphen.
        text = f"${text[0]}${text[1:]}"
    if mark == "best":
        return rf"\textbf{{{text}}}"
    if mark == "second":
        return rf"\underline{{{text}}}"
    return text


def to_latex(table: TableLayout) -> str:
    n_columns = max(len(columns) for _, columns in table.blocks())
    lines = [
        f"% {_provenance()}",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(table.title)}}}",
    ]
    if table.label:
        lines.append(rf"\label{{{table.label}}}")
    lines += [rf"\begin{{tabular}}{{l{'c' * n_columns}}}", r"\toprule"]
    for b, (metric, block_columns) in enumerate(table.blocks()):
        if b:
            lines.append(r"\midrule")
        levels = table.header_levels(block_columns)
        for depth, groups in enumerate(levels):
            cells = [tex_escape(table.corner(metric)) if depth == 0 else ""]
            rules = []
            position = 2
            for text, span in groups:
                cells.append(
                    tex_escape(text)
                    if span == 1
                    else rf"\multicolumn{{{span}}}{{c}}{{{tex_escape(text)}}}"
                )
                if span > 1:
                    rules.append(rf"\cmidrule(lr){{{position}-{position + span - 1}}}")
                position += span
            cells += [""] * (n_columns - len(block_columns))
            lines.append(" & ".join(cells) + r" \\")
            if rules and depth < len(levels) - 1:
                lines.append(" ".join(rules))
        lines.append(r"\midrule")
        previous_reference = False
        for row in table.rows:
            if row.is_reference and not previous_reference:
                lines.append(r"\midrule")
            previous_reference = row.is_reference
            cells = [_tex_cell(*table.cell(row, c), table.signed[row.row_id]) for c in block_columns]
            cells += [""] * (n_columns - len(block_columns))
            lines.append(" & ".join([tex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML (a self-contained page)

_HTML_STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #bbb;padding:.25em .6em}td{text-align:right}"
    "td.label{text-align:left}.second{text-decoration:underline}"
)


def _html_cell(text: str, mark: str) -> str:
    body = html.escape(text)
    if text != MISSING and mark == "best":
        body = f"<b>{body}</b>"
    cls = ' class="second"' if text != MISSING and mark == "second" else ""
    return f"<td{cls}>{body}</td>"


def to_html(table: TableLayout) -> str:
    title = html.escape(table.title)
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{title}</title><style>{_HTML_STYLE}</style></head><body>',
        f"<!-- {html.escape(_provenance())} -->",
        f"<h3>{title}</h3>",
    ]
    for metric, block_columns in table.blocks():
        levels = table.header_levels(block_columns)
        parts.append("<table><thead>")
        for depth, groups in enumerate(levels):
            corner = f'<th rowspan="{len(levels)}">{html.escape(table.corner(metric))}</th>'
            cells = [corner] if depth == 0 else []
            cells += [f'<th colspan="{span}">{html.escape(text)}</th>' for text, span in groups]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</thead><tbody>")
        for row in table.rows:
            cells = "".join(_html_cell(*table.cell(row, c)) for c in block_columns)
            parts.append(f'<tr><td class="label">{html.escape(row.label)}</td>{cells}</tr>')
        parts.append("</tbody></table>")
    if table.mark in ("best_second", "best"):
        second = ", underlined: second best" if table.mark == "best_second" else ""
        parts.append(f"<p>bold: best{second}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- files


def write_table(table: RenderedTable, out_prefix: str | os.PathLike[str]) -> dict[str, Path]:
    """Write `<prefix>.csv` (long format, the table's rows), `.md`, `.tex` and `.html`.

    Every file is written under a temporary name and renamed when complete. Returns the
    written paths by suffix.
    """
    prefix = Path(out_prefix)
    texts = {"csv": table.csv, "md": table.markdown, "tex": table.latex, "html": table.html}
    paths = {}
    for suffix, text in texts.items():
        paths[suffix] = atomic_write_text(prefix.with_name(f"{prefix.name}.{suffix}"), text)
    logger.info("wrote %s.{csv,md,tex,html}", prefix)
    return paths


def make_tables(
    *,
    entries: Iterable[Mapping[str, object]],
    out_dir: str | os.PathLike[str],
    tables: Mapping[str, Mapping[str, object]],
) -> dict[str, dict[str, Path]]:
    """Stage entry point: write `<out_dir>/<name>.{csv,md,tex,html}` for each table spec.

    `entries`: `{"method", "model", "path"}` per trained model (path: its metrics.csv).
    `tables`: name -> spec mapping with keys of `TableSpec` (methods, models, testsets, title,
    layout "absolute"/"delta", ...). All specs are checked, and every table rendered, before
    anything is written.
    """
    if not isinstance(tables, Mapping) or not tables:
        raise ValueError("tables must be a non-empty mapping of table name to spec")
    specs = {}
    for name, spec in tables.items():
        if not str(name) or "/" in str(name) or str(name).startswith("."):
            raise ValueError(f"table name {name!r} is not a plain file name")
        specs[str(name)] = TableSpec.from_mapping(str(name), spec)
    entries = validate_entries(entries)
    wanted = {(m, mo) for s in specs.values() for m in s.methods for mo in s.models}
    available = {(e["method"], e["model"]) for e in entries}
    for name, spec in specs.items():
        for method in spec.methods:
            for model in spec.models:
                if (method, model) not in available:
                    raise ValueError(
                        f"table {name!r}: no results entry for method {method!r}, model {model!r}"
                    )
    # Only the metrics a table uses are read; other entries are ignored.
    results = collect_results([e for e in entries if (e["method"], e["model"]) in wanted])
    rendered = {name: render_table(results, spec) for name, spec in specs.items()}
    return {name: write_table(table, Path(out_dir) / name) for name, table in rendered.items()}
