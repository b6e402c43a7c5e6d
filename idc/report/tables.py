"""Result tables laid out like the paper's, as CSV, Markdown, LaTeX and HTML.

`make_tables` is the stage entry point: one call gathers every metrics file once and writes
`<out_dir>/<name>.csv` (long format: `method, model, testset, psnr, ssim, n_images`), `.md`,
`.tex` and `.html` (the page `snakemake --report` shows) for each requested table. A table is
described by a `TableSpec` and laid out by `render_table` into a `TableLayout`
(`idc.report.table_layout`: names, number formats, ranking marks), which
`idc.report.table_formats` writes as Markdown, LaTeX and HTML.

Two layouts:
- "absolute" (Tables 1, 5, 8): rows are methods, columns test sets x models, the score in
  each cell; best and second best per column marked (Markdown **bold** / _italic_, LaTeX
  \\textbf / \\underline, HTML bold / underlined). PSNR and SSIM either as separate blocks
  (`metrics_layout="blocks"`, Table 1) or side by side under each test set (`"side_by_side"`,
  Table 8).
- "delta" (Tables 2, 4, 7): the first method is the reference row with absolute scores; every
  other row shows its signed difference to it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from idc.atomic import atomic_write_text
from idc.report.paper_reference import PAPER_TABLES, paper_table
from idc.report.results import (
    METRICS,
    collect_results,
    normalise_results,
    results_to_csv_text,
    validate_entries,
)
from idc.report.table_formats import to_html, to_latex, to_markdown
from idc.report.table_layout import (
    REFERENCE_LABEL,
    Row,
    TableLayout,
    default_method_label,
    rank_marks,
)

logger = logging.getLogger(__name__)

Layout = Literal["absolute", "delta"]
MetricsLayout = Literal["blocks", "side_by_side"]

LAYOUTS = ("absolute", "delta")
METRICS_LAYOUTS = ("blocks", "side_by_side")
MARKINGS = ("best_second", "best", "none")

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
