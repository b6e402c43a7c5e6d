"""Published numbers of the IDC paper (Tables 1, 2, 4, 5, 7, 8), for comparison rows.

Transcribed from the paper text as printed, x4 SR, PSNR/SSIM on the Y channel, into
`paper_tables.txt` next to this module (laid out like the paper's tables, so the two can be read
side by side). Each table becomes a long-format frame (`method, model, testset, psnr, ssim,
n_images`) using this project's method ids:

- Table 1 / 8 methods: `whole`, `random`, `herding`, `kcenter`, `dcsr`, `idc`; Table 8's 1%
  rows are `random-r1`, `dcsr-r1`, `idc-r1` (its 10% rows are the plain ids).
- Table 2: `idc`, `idc-v1` ... `idc-v7`; Table 4: `idc` (a0), `idc-a1` ... `idc-a11`;
  Table 7: `idc` (RLFF), `idc-x1` ... `idc-x3`. These print differences to the first row; the
  frames hold absolute values (first row + difference) so any layout can show them.
- Table 5 (up-sampler choice): `idc-uedsr`, `idc-uswinir`, `idc` (MambaIRv2, the default).

Transcription notes (where the extracted text is damaged):
- Table 1, SSIM, Urban100, DCSR, MambaIRv2 is blank in the table body; the text extraction
  spilled that column to the right edge, which reads "0.7801 .7701 0.7759 0.7825" for
  Random/Herding/Kcenter/DCSR (the first three match the body), so DCSR's value is 0.7825.
- Table 5's second row is printed "IDC (EDSR)" twice; its BSD100/Manga109 block names the
  rows EDSR, SwinIR, MambaIRv2 in order, and the third row equals Table 1's IDC, so the second
  row is the SwinIR up-sampler. Table 5's SSIM for BSD100 and Manga109, and for Urban100 of the
  MambaIRv2 row, are missing from the text: NaN here.
- Table 8 prints Random 1% Set14 PSNR as "26.038": kept as printed. Its 10% DCSR row differs
  from Table 1's SwinIR column in two cells (Set14 26.68 vs 26.69, Manga109 28.87 vs 28.86):
  each table keeps its own numbers.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import pandas as pd

from idc.report.results import METRICS, normalise_results

PAPER_TABLES = ("table1", "table2", "table4", "table5", "table7", "table8")
# Image counts of the standard x4 test sets.
TESTSET_SIZES = {"Set5": 5, "Set14": 14, "BSD100": 100, "Urban100": 100, "Manga109": 109}
_DECIMALS = {"psnr": 2, "ssim": 4}


def paper_table(name: str) -> pd.DataFrame:
    """The long-format frame of a published table by name (`table1`, `table2`, ...)."""
    if name not in PAPER_TABLES:
        raise ValueError(f"unknown paper table {name!r}; known: {', '.join(PAPER_TABLES)}")
    return _transcription()[name].copy()


@functools.cache
def _transcription() -> dict[str, pd.DataFrame]:
    text = resources.files("idc.report").joinpath("paper_tables.txt").read_text(encoding="utf-8")
    tables = _parse_transcription(text)
    if tuple(tables) != PAPER_TABLES:
        raise AssertionError(f"paper_tables.txt holds {', '.join(tables)}")
    return tables


def _parse_transcription(text: str) -> dict[str, pd.DataFrame]:
    """Tables in the format of `paper_tables.txt` (its header says how to read it)."""
    values: dict[str, dict[tuple[str, str, str], dict[str, float]]] = {}
    table = columns = base = None
    delta = False
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        where = f"paper_tables.txt line {number}"
        if words[0] == "table":
            table, delta, columns = words[1], words[2:] == ["delta"], None
            values[table] = {}
        elif words[0].endswith(":"):
            columns, base = _block_columns(words, where), None
        elif table is None or columns is None:
            raise AssertionError(f"{where}: a row before its table and block header")
        else:
            method, numbers = words[0], [float(x) for x in words[1:]]
            if len(numbers) != len(columns):
                raise AssertionError(f"{where}: {len(numbers)} numbers for {len(columns)} columns")
            if delta and base is not None:
                numbers = [
                    round(b + v, _DECIMALS[metric])
                    for b, v, (metric, _, _) in zip(base, numbers, columns)
                ]
            base = base or numbers
            for (metric, testset, model), value in zip(columns, numbers):
                values[table].setdefault((method, model, testset), {})[metric] = value
    return {name: _frame(cells) for name, cells in values.items()}


def _block_columns(words: list[str], where: str) -> list[tuple[str, str, str]]:
    """(metric, testset, model) per column of a block header `fixed: testsets x inner`."""
    fixed, rest = words[0].removesuffix(":"), words[1:]
    if rest.count("x") != 1:
        raise AssertionError(f"{where}: a header needs `<fixed>: <test sets> x <inner>`")
    testsets, inner = rest[: rest.index("x")], rest[rest.index("x") + 1 :]
    if fixed in METRICS:
        return [(fixed, t, model) for t in testsets for model in inner]
    return [(metric, t, fixed) for t in testsets for metric in inner]


def _frame(values: dict[tuple[str, str, str], dict[str, float]]) -> pd.DataFrame:
    records = [
        {
            "method": method,
            "model": model,
            "testset": testset,
            "psnr": scores.get("psnr", math.nan),
            "ssim": scores.get("ssim", math.nan),
            "n_images": TESTSET_SIZES[testset],
        }
        for (method, model, testset), scores in values.items()
    ]
    return normalise_results(pd.DataFrame.from_records(records))
