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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from idc.report.collect import METRICS, normalise_results
from idc.report.formats import to_html, to_latex, to_markdown
from idc.report.layout import (
    LAYOUTS,
    MARKINGS,
    METRICS_LAYOUTS,
    Layout,
    Marking,
    MetricsLayout,
    Row,
    TableLayout,
    default_method_label,
    format_value,
)


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
    html: str = ""


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
    rows = [Row(m, labels[m], False) for m in methods]

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
                Row(f"{ref_label}:{m}", f"{labels[m]} [{ref_label}]", True) for m in ref_methods
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

    spec = TableLayout(
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
    return RenderedTable(
        markdown=to_markdown(spec), latex=to_latex(spec), values=shown, marks=marks,
        html=to_html(spec),
    )


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
