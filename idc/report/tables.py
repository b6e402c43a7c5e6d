"""Result tables: collect SR test scores, render them like the paper, write CSV/Markdown/LaTeX.

`make_tables` is the stage entry point: one call gathers every metrics file once and writes
`<out_dir>/<name>.csv` (long format: `method, model, testset, psnr, ssim, n_images`), `.md` and
`.tex` for each requested table.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from idc.atomic import atomic_write_text
from idc.report.collect import (
    collect_results,
    normalise_results,
    read_results_csv,
    results_to_csv_text,
    validate_entries,
)
from idc.report.paper_reference import PAPER_TABLES, paper_table
from idc.report.render import (
    LAYOUTS,
    MARKINGS,
    METRICS_LAYOUTS,
    RenderedTable,
    render_table,
)

__all__ = [
    "TableSpec",
    "collect_results",
    "difference_to_reference",
    "make_tables",
    "read_results_csv",
    "render_table",
    "write_table",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    """What one table shows. Keys of a spec mapping are these field names.

    `reference`: name of a published table (`table1`, `table2`, `table4`, `table5`, `table7`,
    `table8`) whose numbers are added as unranked rows; `reference_methods` maps the paper's
    method ids (see `idc.report.paper_reference`) to the ids used in this run where they differ.
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
        choices = {"layout": LAYOUTS, "metrics_layout": METRICS_LAYOUTS, "mark": MARKINGS}
        for key, allowed in choices.items():
            if spec.get(key) is not None and spec[key] not in allowed:
                raise ValueError(
                    f"table {name!r}: {key} must be one of {', '.join(allowed)}, got {spec[key]!r}"
                )
        reference = spec.get("reference")
        if reference is not None and reference not in PAPER_TABLES:
            raise ValueError(
                f"table {name!r}: reference must be one of {', '.join(PAPER_TABLES)}, "
                f"got {reference!r}"
            )
        for key in ("method_labels", "reference_methods"):
            if key in spec and not isinstance(spec[key], Mapping):
                raise ValueError(f"table {name!r}: {key} must be a mapping")
        return cls(
            **lists,
            title=str(spec["title"]),
            layout=str(spec.get("layout") or "absolute"),
            metrics_layout=spec.get("metrics_layout"),  # type: ignore[arg-type]
            mark=spec.get("mark"),  # type: ignore[arg-type]
            method_labels={
                str(k): str(v) for k, v in dict(spec.get("method_labels") or {}).items()
            },
            label=str(spec.get("label") or f"tab:{name}"),
            reference=reference,  # type: ignore[arg-type]
            testsets_per_block=spec.get("testsets_per_block"),  # type: ignore[arg-type]
            reference_methods={
                str(k): str(v) for k, v in dict(spec.get("reference_methods") or {}).items()
            },
        )

    def reference_frame(self) -> pd.DataFrame | None:
        if self.reference is None:
            return None
        frame = paper_table(self.reference)
        if self.reference_methods:
            frame["method"] = frame["method"].replace(dict(self.reference_methods))
        return frame


def select_results(results: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The rows of `results` a table uses, in the table's method/model/test set order."""
    frame = normalise_results(results)
    frame = frame[
        frame["method"].isin(spec.methods)
        & frame["model"].isin(spec.models)
        & frame["testset"].isin(spec.testsets)
    ].copy()
    order = {
        "method": {m: i for i, m in enumerate(spec.methods)},
        "model": {m: i for i, m in enumerate(spec.models)},
        "testset": {t: i for i, t in enumerate(spec.testsets)},
    }
    frame = frame.sort_values(
        ["method", "model", "testset"], key=lambda column: column.map(order[column.name])
    )
    return frame.reset_index(drop=True)


def render_spec(results: pd.DataFrame, spec: TableSpec) -> RenderedTable:
    reference = spec.reference_frame()
    return render_table(
        results,
        methods_order=spec.methods,
        models_order=spec.models,
        testsets_order=spec.testsets,
        title=spec.title,
        reference=None if reference is None else {"frame": reference, "label": "paper"},
        layout=spec.layout,  # type: ignore[arg-type]
        metrics_layout=spec.metrics_layout,  # type: ignore[arg-type]
        mark=spec.mark,  # type: ignore[arg-type]
        method_labels=spec.method_labels,
        label=spec.label,
        testsets_per_block=spec.testsets_per_block,
    )


def difference_to_reference(results: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Our scores next to published ones, with `psnr_diff`/`ssim_diff` = ours - published.

    Long format over the (method, model, testset) cells both frames hold.
    """
    ours = normalise_results(results).drop(columns="n_images")
    theirs = normalise_results(reference).drop(columns="n_images")
    merged = ours.merge(theirs, on=["method", "model", "testset"], suffixes=("", "_paper"))
    for metric in ("psnr", "ssim"):
        merged[f"{metric}_diff"] = merged[metric] - merged[f"{metric}_paper"]
    return merged


def write_table(
    df: pd.DataFrame,
    out_prefix: str | os.PathLike[str],
    *,
    methods_order: Sequence[str],
    models_order: Sequence[str],
    testsets_order: Sequence[str],
    title: str,
    **render_options: object,
) -> dict[str, Path]:
    """Render `df` and write `<prefix>.csv` (long format, the table's rows), `.md`, `.tex`, `.html`.

    Every file is written under a temporary name and renamed when complete. `render_options`
    are passed to `render_table` (layout, metrics_layout, mark, method_labels, label,
    reference). Returns the written paths by suffix.
    """
    spec = TableSpec(
        methods=tuple(methods_order),
        models=tuple(models_order),
        testsets=tuple(testsets_order),
        title=title,
    )
    rendered = render_table(
        df,
        methods_order=methods_order,
        models_order=models_order,
        testsets_order=testsets_order,
        title=title,
        **render_options,  # type: ignore[arg-type]
    )
    return write_rendered(select_results(df, spec), rendered, out_prefix)


def write_rendered(
    selected: pd.DataFrame, rendered: RenderedTable, out_prefix: str | os.PathLike[str]
) -> dict[str, Path]:
    prefix = Path(out_prefix)
    texts = {
        "csv": results_to_csv_text(selected),
        "md": rendered.markdown,
        "tex": rendered.latex,
        "html": rendered.html,
    }
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
    """Stage entry point: write `<out_dir>/<name>.{csv,md,tex}` for each table spec.

    `entries`: `{"method", "model", "path"}` per trained model (path: its metrics.csv).
    `tables`: name -> spec mapping with keys of `TableSpec` (methods, models, testsets, title,
    layout "absolute"/"delta", ...). All specs are checked, and every result they need is
    confirmed present, before anything is written.
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
    used = [e for e in entries if (e["method"], e["model"]) in wanted]
    results = collect_results(used)
    rendered = {name: render_spec(results, spec) for name, spec in specs.items()}
    out = Path(out_dir)
    written = {}
    for name, spec in specs.items():
        written[name] = write_rendered(select_results(results, spec), rendered[name], out / name)
    return written
