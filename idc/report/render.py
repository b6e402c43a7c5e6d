"""Lay a long-format results frame out like the paper's tables, as Markdown and LaTeX.

Two layouts:
- "absolute" (Tables 1, 5, 8): rows are methods, columns test sets x models, the score in
  each cell; best and second best per column marked (Markdown **bold** / _italic_, LaTeX
  \\textbf / \\underline). PSNR and SSIM either as separate blocks (`metrics_layout="blocks"`,
  Table 1) or side by side under each test set (`"side_by_side"`, Table 8).
- "delta" (Tables 2, 4, 7): the first method is the reference row with absolute scores; every
  other row shows its signed difference to it.

Ranking uses the rounded numbers a reader sees: two methods showing 30.52 tie, both are
"best", and the next lower shown value is "second best" (dense ranking). Both metrics are
higher-is-better.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from idc import __version__
from idc.report.collect import METRICS, normalise_results

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


@dataclass(frozen=True)
class RenderedTable:
    """A table rendered for reading.

    `values`: the numbers shown (differences already taken in the delta layout), rows by row
    id (method, or `paper:<method>` for reference rows), columns a MultiIndex
    (metric, testset, model). `marks`: same shape, "best", "second" or "".
    """

    markdown: str
    latex: str
    values: pd.DataFrame
    marks: pd.DataFrame


@dataclass(frozen=True)
class _Row:
    row_id: str
    label: str
    is_reference: bool


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


def _check_order(name: str, order: Sequence[str]) -> list[str]:
    if isinstance(order, str) or not isinstance(order, Sequence) or not order:
        raise ValueError(f"{name} must be a non-empty list, got {order!r}")
    items = [str(x) for x in order]
    duplicates = sorted({x for x in items if items.count(x) > 1})
    if duplicates:
        raise ValueError(f"{name} lists {', '.join(duplicates)} more than once")
    return items


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


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


def check_same_images(frame: pd.DataFrame) -> None:
    """Every method must be scored on the same number of images of a test set."""
    known = frame.dropna(subset=["n_images"])
    for testset, group in known.groupby("testset", sort=False):
        counts = group["n_images"].astype(int)
        if counts.nunique() > 1:
            detail = ", ".join(
                f"{r.method}/{r.model}: {int(r.n_images)}" for r in group.itertuples()
            )
            raise ValueError(
                f"{testset}: results cover different numbers of images ({detail}); "
                "a metrics file is incomplete"
            )


def _select(
    frame: pd.DataFrame,
    methods: Sequence[str],
    models: Sequence[str],
    testsets: Sequence[str],
    what: str,
    require_all: bool,
) -> pd.DataFrame:
    subset = frame[
        frame["method"].isin(methods)
        & frame["model"].isin(models)
        & frame["testset"].isin(testsets)
    ]
    if require_all:
        for name, column, wanted in (
            ("method", "method", methods),
            ("model", "model", models),
            ("test set", "testset", testsets),
        ):
            present = set(frame[column])
            absent = [w for w in wanted if w not in present]
            if absent:
                raise ValueError(f"no {what} for {name} {absent[0]!r}")
    return subset


def check_complete(
    frame: pd.DataFrame, methods: Sequence[str], models: Sequence[str], testsets: Sequence[str]
) -> None:
    """Every (method, model, test set) cell of the table must have a result."""
    present = set(zip(frame["method"], frame["model"], frame["testset"]))
    for method in methods:
        for model in models:
            for testset in testsets:
                if (method, model, testset) not in present:
                    raise ValueError(f"no result for {method}/{model} on {testset}")


def _delta(wide: pd.DataFrame, baseline: str) -> pd.DataFrame:
    shown = wide.copy()
    others = [r for r in wide.index if r != baseline]
    shown.loc[others] = wide.loc[others] - wide.loc[baseline]
    return shown


def render_table(
    df: pd.DataFrame,
    *,
    methods_order: Sequence[str],
    models_order: Sequence[str],
    testsets_order: Sequence[str],
    title: str,
    reference: Mapping[str, object] | pd.DataFrame | None = None,
    layout: Layout = "absolute",
    metrics_layout: MetricsLayout | None = None,
    mark: Marking | None = None,
    method_labels: Mapping[str, str] | None = None,
    label: str = "",
    strict: bool = True,
    testsets_per_block: int | None = None,
) -> RenderedTable:
    """Render results laid out like the paper's tables (see the module docstring).

    `df`: long-format results (`method, model, testset, psnr, ssim[, n_images]`).
    `reference`: published numbers to show below as extra rows, not ranked; either a long
    frame or `{"frame": long frame, "label": "paper"}`. Methods absent from it get no row.
    `metrics_layout` defaults to "blocks" for "absolute" and "side_by_side" for "delta";
    `mark` to "best_second" for "absolute" and "none" for "delta". `label` is the LaTeX label.
    `testsets_per_block`: cut the columns into row blocks of this many test sets (the paper
    prints Table 1 as 3 + 2 test sets per metric); None keeps every test set in one block.
    `strict`: refuse results with an empty cell or whose test sets were scored on different
    numbers of images (an incomplete metrics file); without it, empty cells show "–".
    """
    methods = _check_order("methods_order", methods_order)
    models = _check_order("models_order", models_order)
    testsets = _check_order("testsets_order", testsets_order)
    _check_choice("layout", layout, LAYOUTS)
    metrics_layout = metrics_layout or ("blocks" if layout == "absolute" else "side_by_side")
    _check_choice("metrics_layout", metrics_layout, METRICS_LAYOUTS)
    mark = mark or ("best_second" if layout == "absolute" else "none")
    if testsets_per_block is not None and (
        isinstance(testsets_per_block, bool)
        or not isinstance(testsets_per_block, int)
        or testsets_per_block < 1
    ):
        raise ValueError(
            f"testsets_per_block must be a positive integer, got {testsets_per_block!r}"
        )
    _check_choice("mark", mark, MARKINGS)
    labels = {m: default_method_label(m) for m in methods}
    labels.update(dict(method_labels or {}))

    results = _select(normalise_results(df), methods, models, testsets, "results", True)
    if strict:
        check_complete(results, methods, models, testsets)
        check_same_images(results)
    columns = _columns(testsets, models, metrics_layout)
    wide = _wide(results, methods, columns)
    rows = [_Row(m, labels[m], False) for m in methods]

    ref_wide = None
    if reference is not None:
        ref_frame, ref_label = _reference_parts(reference)
        ref = _select(normalise_results(ref_frame), methods, models, testsets, "reference", False)
        ref_methods = [m for m in methods if m in set(ref["method"])]
        if layout == "delta" and ref_methods and ref_methods[0] != methods[0]:
            raise ValueError(
                f"reference lacks the baseline method {methods[0]!r} that the delta layout needs"
            )
        if ref_methods:
            ref_wide = _wide(ref, ref_methods, columns)
            ref_wide.index = [f"{ref_label}:{m}" for m in ref_methods]
            rows += [
                _Row(f"{ref_label}:{m}", f"{labels[m]} [{ref_label}]", True) for m in ref_methods
            ]

    # Ranks come from absolute values of our own rows only; reference rows are context.
    marks = pd.DataFrame("", index=[r.row_id for r in rows], columns=columns)
    for column in columns:
        marks.loc[methods, column] = rank_marks(list(wide[column]), column[0], mark)

    shown = _delta(wide, methods[0]) if layout == "delta" else wide
    if ref_wide is not None:
        ref_shown = _delta(ref_wide, ref_wide.index[0]) if layout == "delta" else ref_wide
        shown = pd.concat([shown, ref_shown])
    baseline_rows = {methods[0]} | ({ref_wide.index[0]} if ref_wide is not None else set())
    signed = {r.row_id: layout == "delta" and r.row_id not in baseline_rows for r in rows}

    spec = _Spec(
        title,
        label,
        columns,
        metrics_layout,
        rows,
        shown,
        marks,
        signed,
        layout,
        mark,
        testsets_per_block,
    )
    return RenderedTable(markdown=_markdown(spec), latex=_latex(spec), values=shown, marks=marks)


def _reference_parts(reference: Mapping[str, object] | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(reference, pd.DataFrame):
        return reference, "paper"
    if not isinstance(reference, Mapping) or "frame" not in reference:
        raise ValueError("reference must be a results frame or a mapping with key 'frame'")
    unknown = sorted(set(reference) - {"frame", "label"})
    if unknown:
        raise ValueError(f"reference has unknown key(s) {', '.join(unknown)}")
    frame = reference["frame"]
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("reference['frame'] must be a pandas DataFrame")
    ref_label = str(reference.get("label", "paper"))
    if not ref_label or ":" in ref_label:
        raise ValueError(f"reference label must be non-empty without ':', got {ref_label!r}")
    return frame, ref_label


@dataclass(frozen=True)
class _Spec:
    title: str
    label: str
    columns: pd.MultiIndex
    metrics_layout: str
    rows: list[_Row]
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

    def cell(self, row: _Row, column: tuple[str, str, str]) -> tuple[str, str]:
        value = self.shown.at[row.row_id, column]
        text = format_value(value, column[0], signed=self.signed[row.row_id])
        return text, self.marks.at[row.row_id, column]

    def legend(self) -> str:
        if self.mark == "best_second":
            return "best and second best per column marked"
        if self.mark == "best":
            return "best per column marked"
        return ""


def _level_text(level: int, value: str) -> str:
    if level == 0:
        return METRIC_SHORT[value]
    if level == 2:
        return MODEL_LABELS.get(value, value)
    return value


def _metric_title(metric: str) -> str:
    return f"{METRIC_LABELS[metric]} ↑"


def _provenance() -> str:
    return f"generated by idc-workflow {__version__} (idc.report)"


# ---------------------------------------------------------------- Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(text: str, mark: str) -> str:
    if text == MISSING or not mark:
        return text
    return f"**{text}**" if mark == "best" else f"_{text}_"


def _markdown(spec: _Spec) -> str:
    lines = [f"<!-- {_provenance()} -->", f"**{_md_escape(spec.title)}**", ""]
    for metric, block_columns in spec.blocks():
        levels = spec.header_levels(block_columns)
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
        first = (
            _metric_title(metric) if metric else ("Variant" if spec.layout == "delta" else "Method")
        )
        lines.append("| " + " | ".join([first, *map(_md_escape, headers)]) + " |")
        lines.append("| :-- | " + " | ".join(["--:"] * len(block_columns)) + " |")
        for row in spec.rows:
            cells = [_md_cell(*spec.cell(row, c)) for c in block_columns]
            lines.append("| " + " | ".join([_md_escape(row.label), *cells]) + " |")
        lines.append("")
    notes = []
    if spec.legend():
        notes.append(
            "**bold**: best, _italic_: second best"
            if spec.mark == "best_second"
            else "**bold**: best"
        )
    if spec.layout == "delta":
        notes.append(f"first row absolute, other rows difference to it")
    if any(r.is_reference for r in spec.rows):
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


def _latex(spec: _Spec) -> str:
    n_columns = max(len(columns) for _, columns in spec.blocks())
    lines = [
        f"% {_provenance()}",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(spec.title)}}}",
    ]
    if spec.label:
        lines.append(rf"\label{{{spec.label}}}")
    lines += [rf"\begin{{tabular}}{{l{'c' * n_columns}}}", r"\toprule"]
    for b, (metric, block_columns) in enumerate(spec.blocks()):
        if b:
            lines.append(r"\midrule")
        levels = spec.header_levels(block_columns)
        for depth, groups in enumerate(levels):
            if depth == 0:
                corner = (
                    tex_escape(_metric_title(metric))
                    if metric
                    else ("Variant" if spec.layout == "delta" else "Method")
                )
            else:
                corner = ""
            cells = [corner]
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
        for row in spec.rows:
            if row.is_reference and not previous_reference:
                lines.append(r"\midrule")
            previous_reference = row.is_reference
            cells = [_tex_cell(*spec.cell(row, c), spec.signed[row.row_id]) for c in block_columns]
            cells += [""] * (n_columns - len(block_columns))
            lines.append(" & ".join([tex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
