"""What a result table shows, independent of the file format: the display names and number
formats, the ranking marks, and `TableLayout` (rows, columns, shown values and marks) that the
Markdown, LaTeX and HTML writers (`idc.report.table_formats`) draw.

Ranking uses the rounded numbers a reader sees: two methods showing 30.52 tie, both are
"best", and the next lower shown value is "second best" (dense ranking). Both metrics are
higher-is-better.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from idc import __version__
from idc.report.results import METRICS

Marking = Literal["best_second", "best", "none"]

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


def provenance() -> str:
    return f"generated by idc-workflow {__version__} (idc.report)"
