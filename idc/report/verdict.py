"""Verdict statistics: is one training set better than another, beyond the noise of training?

A difference of a few hundredths of a dB between two training sets means nothing unless it is
larger than what retraining the same model on the same data (another model seed) and testing it
on other images of the same kind would change. This module answers with intervals, from the
per-image test scores of SR models trained in several replicates:

- Differences are paired. Within one replicate number every method's model was trained from the
  same model seed, and every model is tested on the same images, so the difference of two methods
  is taken cell by cell over (replicate, image) of one model and test set: an (R, I) matrix
  `d = a - b`.
- The interval is a percentile interval of a hierarchical two-way bootstrap
  (`paired_difference`): each draw resamples the R replicate rows and the I image columns with
  replacement, independently, and takes the mean of `d` over the drawn cells. Both sources of
  variation (the training seed and the choice of test images) widen it; with one replicate only
  the images are resampled, and the interval says nothing about seed noise.
- Every comparison comes with a positive control: Whole (the full training set) against the
  reference (normally Random at the same ratio). If the setting cannot tell those two apart, it
  cannot tell any two training sets apart either, and the Markdown says so on its first line.

`verdict_frame` gives the long-format CSV (one row per method, model, test set, metric and
compared method, plus each method's own means), `render_verdict_markdown` the readable document,
`make_verdict` writes both (`make_verdict_from_entries`: from the metrics files of the trained
models, the workflow's rule). Each row's bootstrap has its own generator, seeded from the spec's
seed and the row's names, so a row's interval does not depend on which other rows are computed
and reruns are identical.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from idc import __version__
from idc.atomic import atomic_write_text
from idc.report.results import read_metrics_csv, validate_entries
from idc.report.table_layout import default_method_label

logger = logging.getLogger(__name__)

__all__ = [
    "ALL",
    "PER_IMAGE_COLUMNS",
    "VERDICT_COLUMNS",
    "VerdictSpec",
    "make_verdict",
    "make_verdict_from_entries",
    "paired_difference",
    "per_image_from_entries",
    "render_verdict_markdown",
    "verdict_frame",
]

PER_IMAGE_COLUMNS = ("method", "replicate", "model", "testset", "image", "psnr", "ssim")
VERDICT_COLUMNS = ("method", "model", "testset", "metric", "versus", "mean", "versus_mean", "diff",
                   "ci_low", "ci_high", "sd_replicates", "n_replicates", "n_images", "reading",
                   "ior", "ior_low", "ior_high", "hlr", "hlr_low", "hlr_high")
# DD-Ranking's names for two of the differences, filled on a method's own row: improvement over
# the reference (IOR = method - Random) and the gap to the full data (HLR = Whole - method).
DD_RANKING_COLUMNS = ("ior", "ior_low", "ior_high", "hlr", "hlr_low", "hlr_high")
METRICS = ("psnr", "ssim")
# The pseudo test set of every image of every listed test set, pooled.
ALL = "all"
READINGS = ("better", "worse", "not resolved")
# Decimals shown: differences and means.
DIFF_DECIMALS = {"psnr": 3, "ssim": 4}
MEAN_DECIMALS = {"psnr": 2, "ssim": 4}
METRIC_SHORT = {"psnr": "PSNR", "ssim": "SSIM"}
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM"}
# Bootstrap draws are computed in chunks of at most this many (draw x column) cells.
_CHUNK_CELLS = 1 << 22


# ---------------------------------------------------------------- what a verdict compares


@dataclass(frozen=True)
class VerdictSpec:
    """What one verdict compares.

    `methods`: rows, in order; the reference and whole may be among them or not (their means
    are shown either way). Every method is compared with `reference` and with `whole`
    (the positive control, None for none); `contrasts` adds (a, b) pairs read as a - b.
    `labels`: display names by method (default: the paper's spelling of known methods, else
    the method id). `level`: coverage of the percentile intervals; `n_boot` draws each.
    """

    methods: tuple[str, ...]
    models: tuple[str, ...]
    testsets: tuple[str, ...]
    reference: str
    whole: str | None
    contrasts: tuple[tuple[str, str], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    n_boot: int = 2000
    seed: int = 0
    level: float = 0.95
    title: str = ""

    def __post_init__(self) -> None:
        for name in ("methods", "models", "testsets"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise ValueError(f"VerdictSpec.{name}: a non-empty list of names, got {value!r}")
            object.__setattr__(self, name, tuple(str(v) for v in value))
            if len(set(getattr(self, name))) != len(value):
                raise ValueError(f"VerdictSpec.{name}: names repeat in {value!r}")
        if ALL in self.testsets:
            raise ValueError(f"VerdictSpec.testsets: {ALL!r} is the name of the pooled test sets, not a test set")
        if not self.reference:
            raise ValueError("VerdictSpec.reference: a method name is required")
        if self.whole is not None and self.whole == self.reference:
            raise ValueError(f"VerdictSpec: whole and reference are both {self.reference!r}")
        contrasts = []
        for pair in self.contrasts:
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"VerdictSpec.contrasts: each contrast is a pair (a, b), got {pair!r}")
            a, b = str(pair[0]), str(pair[1])
            if a == b:
                raise ValueError(f"VerdictSpec.contrasts: contrast of {a!r} with itself")
            contrasts.append((a, b))
        object.__setattr__(self, "contrasts", tuple(contrasts))
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < 1:
            raise ValueError(f"VerdictSpec.n_boot: a positive integer, got {self.n_boot!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"VerdictSpec.seed: a non-negative integer, got {self.seed!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"VerdictSpec.level: between 0 and 1, got {self.level!r}")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, object]) -> VerdictSpec:
        """A spec from a mapping of its field names (the workflow's params: lists, null labels)."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"verdict spec: a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"verdict spec: unknown key {unknown[0]!r}")
        for key in ("methods", "models", "testsets", "reference", "whole"):
            if key not in spec:
                raise ValueError(f"verdict spec: missing key {key!r}")
        values = dict(spec)
        values["contrasts"] = tuple(tuple(pair) for pair in values.get("contrasts") or ())
        values["labels"] = dict(values.get("labels") or {})
        return cls(**values)

    def label(self, method: str) -> str:
        return self.labels.get(method) or default_method_label(method)

    def all_methods(self) -> tuple[str, ...]:
        """Every method the verdict reads: `methods`, then reference, whole and contrast members
        not among them."""
        extra = [self.reference, self.whole, *(m for pair in self.contrasts for m in pair)]
        return tuple(dict.fromkeys([*self.methods, *(m for m in extra if m is not None)]))

    def comparisons(self) -> tuple[tuple[str, str], ...]:
        """(method, versus) pairs of the difference rows, without repeats; the positive control
        (whole, reference) is always among them when `whole` is set."""
        pairs = []
        for method in self.methods:
            if method != self.reference:
                pairs.append((method, self.reference))
            # Reference - Whole would only mirror the positive control.
            if self.whole is not None and method not in (self.whole, self.reference):
                pairs.append((method, self.whole))
        if self.whole is not None:
            pairs.append((self.whole, self.reference))
        pairs.extend(self.contrasts)
        return tuple(dict.fromkeys(pairs))


# ---------------------------------------------------------------- the bootstrap


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, n_boot: int, rng: np.random.Generator, level: float
) -> tuple[float, float, float]:
    """Mean paired difference of `a - b` and its percentile interval.

    `a`, `b`: shape (R, I), a metric per replicate (rows, paired by replicate) and test image
    (columns, paired by image). Returns `(diff, ci_low, ci_high)`: `diff` the mean of
    `d = a - b`; the interval the `level` percentile interval of a hierarchical two-way
    bootstrap, each draw resampling R rows and I columns with replacement (independently) and
    taking the mean of `d` over the drawn cells. With R == 1 only the columns are resampled.

    A draw's mean is `wr @ d @ wc / (R * I)` with `wr`, `wc` the counts of each row and column in
    the draw, computed for a chunk of draws at once. The bootstrap runs on `d - diff` and adds
    `diff` back, so a constant `d` gives exactly the degenerate interval [diff, diff].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_difference: a and b must be non-empty (R, I) arrays of one shape, "
                         f"got {a.shape} and {b.shape}")
    if n_boot < 1:
        raise ValueError(f"paired_difference: n_boot must be positive, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"paired_difference: level must be between 0 and 1, got {level}")
    d = a - b
    if not np.all(np.isfinite(d)):
        raise ValueError("paired_difference: non-finite values")
    diff = float(d.mean())
    centred = d - diff
    n_rows, n_cols = d.shape
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(n_rows, n_cols)))
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        col_counts = _counts(rng, size, n_cols)
        if n_rows == 1:
            weighted = np.broadcast_to(centred[0], (size, n_cols))
        else:
            weighted = _counts(rng, size, n_rows) @ centred
        means[start:start + size] = np.einsum("ij,ij->i", weighted, col_counts) / (n_rows * n_cols)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return diff, diff + float(low), diff + float(high)


def _counts(rng: np.random.Generator, draws: int, n: int) -> np.ndarray:
    """(draws, n): how often each of n items is drawn in each of `draws` resamples of size n."""
    picks = rng.integers(0, n, size=(draws, n)) + (np.arange(draws) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.float64)


def _row_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator of one row, from the seed and the row's names (crc32: stable across runs,
    unlike Python's salted hash())."""
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(n.encode()) for n in names)]))


def reading(ci_low: float, ci_high: float) -> str:
    """"better" when the interval lies above 0, "worse" below, else "not resolved"."""
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "not resolved"


# ---------------------------------------------------------------- the frame


def _checked(per_image: pd.DataFrame, spec: VerdictSpec) -> pd.DataFrame:
    """The rows the verdict reads, with names as strings and replicate numbers as ints; every
    error is one line naming what is wrong."""
    missing = [c for c in PER_IMAGE_COLUMNS if c not in per_image.columns]
    if missing:
        raise ValueError(f"per-image metrics: missing column(s) {', '.join(missing)}")
    data = per_image.loc[:, list(PER_IMAGE_COLUMNS)].copy()
    for column in ("method", "model", "testset", "image"):
        data[column] = data[column].astype(str)
    for name, wanted, column in (("method", spec.all_methods(), "method"), ("model", spec.models, "model"),
                                 ("test set", spec.testsets, "testset")):
        present = set(data[column])
        absent = [w for w in wanted if w not in present]
        if absent:
            raise ValueError(f"per-image metrics: no rows for {name} {absent[0]!r}")
    data = data[data["method"].isin(spec.all_methods()) & data["model"].isin(spec.models)
                & data["testset"].isin(spec.testsets)]
    replicate = pd.to_numeric(data["replicate"], errors="coerce")
    bad = ~np.isfinite(replicate.to_numpy(dtype=np.float64)) | (replicate != replicate.round())
    if bad.any():
        raise ValueError(f"per-image metrics: replicate {data['replicate'][bad].iloc[0]!r} is not an integer")
    data["replicate"] = replicate.astype(np.int64)
    for metric in METRICS:
        values = pd.to_numeric(data[metric], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = data[bad].iloc[0]
            raise ValueError(f"per-image metrics: non-finite {metric} {row[metric]!r} for method {row['method']!r} "
                             f"replicate {row['replicate']} model {row['model']!r} testset {row['testset']!r} "
                             f"image {row['image']!r}")
        data[metric] = values
    keys = ["method", "replicate", "model", "testset", "image"]
    repeated = data.duplicated(keys)
    if repeated.any():
        row = data[repeated].iloc[0]
        raise ValueError(f"per-image metrics: more than one row for method {row['method']!r} replicate "
                         f"{row['replicate']} model {row['model']!r} testset {row['testset']!r} image {row['image']!r}")
    present = set(data[["method", "model", "testset"]].itertuples(index=False, name=None))
    for method in spec.all_methods():
        for model in spec.models:
            for testset in spec.testsets:
                if (method, model, testset) not in present:
                    raise ValueError(f"per-image metrics: no rows for method {method!r} model {model!r} "
                                     f"testset {testset!r}")
    return data


class _Matrices:
    """(replicates x images) matrices of one metric per (method, model, test set), built once."""

    def __init__(self, data: pd.DataFrame) -> None:
        self._groups = {key: rows for key, rows in data.groupby(["method", "model"], sort=False)}
        self._cache: dict[tuple[str, str, str, str], pd.DataFrame] = {}

    def get(self, method: str, model: str, testset: str, metric: str, testsets: Sequence[str]) -> pd.DataFrame:
        key = (method, model, testset, metric)
        if key not in self._cache:
            rows = self._groups[(method, model)]
            rows = rows[rows["testset"].isin(testsets if testset == ALL else [testset])]
            matrix = rows.pivot(index="replicate", columns=["testset", "image"], values=metric)
            matrix = matrix.sort_index(axis=0).sort_index(axis=1)
            holes = matrix.isna()
            if holes.to_numpy().any():
                replicate = holes.any(axis=1).idxmax()
                lacking = holes.loc[replicate]
                image = lacking[lacking].index[0]
                raise ValueError(f"per-image metrics: method {method!r} model {model!r} testset {testset!r}: "
                                 f"replicate {replicate} lacks {int(lacking.sum())} of the {matrix.shape[1]} images "
                                 f"the other replicates have (e.g. {image[0]}/{image[1]})")
            self._cache[key] = matrix
        return self._cache[key]


def _paired(pa: pd.DataFrame, pb: pd.DataFrame, method: str, versus: str, model: str,
            testset: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The two matrices on the replicate numbers both have and the (identical) image columns."""
    shared = sorted(set(pa.index) & set(pb.index))
    if not shared:
        raise ValueError(f"methods {method!r} and {versus!r} share no replicate number (model {model!r}: "
                         f"{sorted(pa.index)} and {sorted(pb.index)}): nothing to pair")
    if not pa.columns.equals(pb.columns):
        only_a = pa.columns.difference(pb.columns)
        only_b = pb.columns.difference(pa.columns)
        example = (f"{only_a[0][0]}/{only_a[0][1]} only in {method!r}" if len(only_a)
                   else f"{only_b[0][0]}/{only_b[0][1]} only in {versus!r}")
        raise ValueError(f"methods {method!r} and {versus!r}, model {model!r}, testset {testset!r}: "
                         f"different image sets ({len(pa.columns)} and {len(pb.columns)} images; {example})")
    return pa.loc[shared].to_numpy(), pb.loc[shared].to_numpy(), len(shared)


def verdict_frame(per_image: pd.DataFrame, spec: VerdictSpec) -> pd.DataFrame:
    """Long-format verdict: one row per (method, model, testset, metric, versus); columns
    `VERDICT_COLUMNS`.

    `testset` is each of `spec.testsets` and `all` (every image of them pooled). `versus` is the
    compared method (rows `spec.comparisons()`), or "" for a method's own row, which gives its
    mean with NaN difference. `mean` (and `versus_mean`) is the mean over a method's replicates
    (all of them) of its mean over images; `diff`, `ci_low`, `ci_high` come from
    `paired_difference` over the replicate numbers both methods have (`n_replicates`) and the
    `n_images` images; `sd_replicates` is the sd over the replicates of each one's mean
    difference (NaN with one replicate).

    A method's own row also carries DD-Ranking's two figures with their intervals: `ior`, its
    improvement over the reference (method - reference), and `hlr`, its gap to the full data
    (whole - method, lower is better); NaN where the method is the reference or the whole, or
    there is no whole.
    """
    data = _checked(per_image, spec)
    matrices = _Matrices(data)
    methods = spec.all_methods()
    comparisons = spec.comparisons()
    rows = []
    for model in spec.models:
        for testset in (*spec.testsets, ALL):
            for metric in METRICS:
                def matrix(method: str) -> pd.DataFrame:
                    return matrices.get(method, model, testset, metric, spec.testsets)

                own_rows = {}
                for method in methods:
                    own = matrix(method)
                    own_rows[method] = {
                        "method": method, "model": model, "testset": testset, "metric": metric, "versus": "",
                        "mean": float(own.mean(axis=1).mean()), "versus_mean": math.nan, "diff": math.nan,
                        "ci_low": math.nan, "ci_high": math.nan, "sd_replicates": math.nan,
                        "n_replicates": own.shape[0], "n_images": own.shape[1], "reading": "",
                        **dict.fromkeys(DD_RANKING_COLUMNS, math.nan)}
                    rows.append(own_rows[method])
                for method, versus in comparisons:
                    pa, pb = matrix(method), matrix(versus)
                    a, b, n_shared = _paired(pa, pb, method, versus, model, testset)
                    rng = _row_rng(spec.seed, method, versus, model, testset, metric)
                    diff, low, high = paired_difference(a, b, n_boot=spec.n_boot, rng=rng, level=spec.level)
                    # The run-to-run spread DD-Ranking reports beside its means: the sd over
                    # replicates of each replicate's mean difference.
                    by_replicate = (a - b).mean(axis=1)
                    sd = float(np.std(by_replicate, ddof=1)) if n_shared > 1 else math.nan
                    rows.append({"method": method, "model": model, "testset": testset, "metric": metric,
                                 "versus": versus, "mean": float(pa.mean(axis=1).mean()),
                                 "versus_mean": float(pb.mean(axis=1).mean()), "diff": diff, "ci_low": low,
                                 "ci_high": high, "sd_replicates": sd, "n_replicates": n_shared,
                                 "n_images": a.shape[1], "reading": reading(low, high),
                                 **dict.fromkeys(DD_RANKING_COLUMNS, math.nan)})
                    if versus == spec.reference and method in own_rows:
                        own_rows[method].update(ior=diff, ior_low=low, ior_high=high)
                    if versus == spec.whole and method in own_rows:
                        own_rows[method].update(hlr=-diff, hlr_low=-high, hlr_high=-low)
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    logger.debug("verdict: %d rows (%d comparisons x %d models x %d test sets x 2 metrics)", len(frame),
                 len(comparisons), len(spec.models), len(spec.testsets) + 1)
    return frame


# ---------------------------------------------------------------- Markdown


def _signed(value: float, decimals: int) -> str:
    """A signed difference; one that rounds to zero is shown without a sign, never as "-0.000"."""
    text = f"{value:+.{decimals}f}"
    return text[1:] if float(text) == 0 else text


def _bound(value: float, decimals: int) -> str:
    """An interval bound keeps the sign of its value even where it rounds to zero ("-0.0000"):
    a reading of "worse" next to a bound shown as "0.0000" would look like a contradiction."""
    return f"{0:.{decimals}f}" if value == 0 else f"{value:+.{decimals}f}"


def _interval(row: Mapping[str, object], metric: str) -> str:
    decimals = DIFF_DECIMALS[metric]
    return f"[{_bound(row['ci_low'], decimals)}, {_bound(row['ci_high'], decimals)}]"


def _contains_zero(row: Mapping[str, object]) -> bool:
    return row["ci_low"] <= 0 <= row["ci_high"]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _sentence(row: Mapping[str, object], spec: VerdictSpec, model: str) -> str:
    """One (method, versus) PSNR row as a sentence; magnitudes in words, signed interval."""
    label, versus = spec.label(str(row["method"])), spec.label(str(row["versus"]))
    decimals = DIFF_DECIMALS["psnr"]
    interval = _interval(row, "psnr")
    if row["reading"] == "better":
        return f"{label} ({model}): better than {versus} by {abs(row['diff']):.{decimals}f} dB {interval}."
    if row["reading"] == "worse":
        return f"{label} ({model}): worse than {versus} by {abs(row['diff']):.{decimals}f} dB {interval}."
    return f"{label} ({model}): not resolved against {versus}: {_signed(row['diff'], decimals)} dB {interval}."


def _table(header: Sequence[str], body: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
    return lines


def _dd_figure(row: Mapping[str, object], key: str, metric: str, sd: float) -> str:
    """`+0.078 [+0.002, +0.158] ± 0.050`: mean, interval, sd over replicates ("" with one)."""
    decimals = DIFF_DECIMALS[metric]
    text = f"{_signed(row[key], decimals)} [{_bound(row[f'{key}_low'], decimals)}, {_bound(row[f'{key}_high'], decimals)}]"
    return text if math.isnan(sd) else f"{text} ± {sd:.{decimals}f}"


def _dd_ranking_section(row: Callable[..., Mapping[str, object]], spec: VerdictSpec,
                        testsets: Sequence[str]) -> list[str]:
    """Per model, each method's improvement over the reference (IOR) and gap to the whole (HLR),
    in DD-Ranking's terms, on every test set and pooled; empty without a whole."""
    if spec.whole is None:
        return []
    ref_label, whole_label = spec.label(spec.reference), spec.label(spec.whole)
    lines: list[str] = []
    for model in spec.models:
        lines += [f"### Improvement over {ref_label} and gap to {whole_label} ({model})", ""]
        header = ["Method", "Test set", *(f"{name} {METRIC_SHORT[m]}" for m in METRICS for name in ("IOR", "HLR")),
                  "n_rep"]
        body = []
        for method in spec.methods:
            if method in (spec.reference, spec.whole):
                continue
            for testset in testsets:
                cells = [spec.label(method), "All" if testset == ALL else testset]
                for metric in METRICS:
                    own = row(method, "", model, testset, metric)
                    ior_sd = row(method, spec.reference, model, testset, metric)["sd_replicates"]
                    hlr_sd = row(method, spec.whole, model, testset, metric)["sd_replicates"]
                    cells += [_dd_figure(own, "ior", metric, ior_sd), _dd_figure(own, "hlr", metric, hlr_sd)]
                cells.append(str(int(row(method, spec.reference, model, testset, "psnr")["n_replicates"])))
                body.append(cells)
        lines += _table(header, body, ["l", "l", "r", "r", "r", "r", "r"]) + [""]
        lines += [f"IOR = method - {ref_label} (higher is better); HLR = {whole_label} - method (the gap to the full "
                  f"data, lower is better), each the mean paired difference [interval] ± sd over replicates, as "
                  f"DD-Ranking reports them. HLR here is measured with each method's own HR side (the teacher's "
                  f"where it relabels), not only with real HR.", ""]
    return lines


class _FrameRows:
    """The rows of a verdict frame by (method, versus, model, testset, metric); a missing row is a
    one-line error naming it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        frame = frame.copy()
        frame["versus"] = frame["versus"].fillna("").astype(str)
        self._index = {(r["method"], r["versus"], r["model"], r["testset"], r["metric"]): r
                       for r in frame.to_dict(orient="records")}

    def __call__(self, method: str, versus: str, model: str, testset: str, metric: str) -> Mapping[str, object]:
        try:
            return self._index[(method, versus, model, testset, metric)]
        except KeyError:
            raise ValueError(f"verdict frame: no row for method {method!r} versus {versus!r} model {model!r} "
                             f"testset {testset!r} metric {metric!r}") from None


def _control_lines(row: _FrameRows, spec: VerdictSpec) -> tuple[list[str], list[str]]:
    """(warnings for the top of the document, one line per model) of the positive control."""
    warnings: list[str] = []
    controls: list[str] = []
    if spec.whole is None:
        return warnings, controls
    whole_label, ref_label = spec.label(spec.whole), spec.label(spec.reference)
    for model in spec.models:
        control = row(spec.whole, spec.reference, model, ALL, "psnr")
        shown = f"{_signed(control['diff'], DIFF_DECIMALS['psnr'])} dB {_interval(control, 'psnr')}"
        # The control passes only when the full data is resolved as better: a setting where it
        # is resolved as worse cannot rank training sets either (an undertrained model, a
        # reference that is not a subset of the whole).
        if _contains_zero(control):
            warnings.append(f"> **This setting cannot resolve differences in training data:** the positive control "
                            f"{whole_label} - {ref_label} is {shown} ({model}), an interval that contains 0. "
                            f"Read no difference below as a result.")
            outcome = "not resolved: the control fails"
        elif control["ci_high"] < 0:
            warnings.append(f"> **This setting cannot resolve differences in training data:** the positive control "
                            f"{whole_label} - {ref_label} is {shown} ({model}): the full data trains a worse "
                            f"model than its subset. Read no difference below as a result.")
            outcome = "resolved in the wrong direction: the control fails"
        else:
            outcome = "resolved: the control passes"
        controls.append(f"Positive control ({model}): {whole_label} - {ref_label} = {shown}, {outcome}.")
    return warnings, controls


def _means_section(row: _FrameRows, spec: VerdictSpec, testsets: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for model in spec.models:
        lines += [f"### Means ({model})", ""]
        header = ["Method", *(f"{'All' if t == ALL else t} {METRIC_SHORT[m]}" for t in testsets for m in METRICS),
                  "n_rep"]
        body = []
        for method in spec.all_methods():
            cells = [spec.label(method)]
            for testset in testsets:
                for metric in METRICS:
                    cells.append(f"{row(method, '', model, testset, metric)['mean']:.{MEAN_DECIMALS[metric]}f}")
            cells.append(str(int(row(method, "", model, ALL, "psnr")["n_replicates"])))
            body.append(cells)
        lines += _table(header, body, ["l", *["r"] * (len(header) - 1)]) + [""]
    return lines


def _differences_section(row: _FrameRows, spec: VerdictSpec, testsets: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for model in spec.models:
        lines += [f"### Differences ({model})", ""]
        header = ["Method", "Versus", "Metric", "Test set", "Difference [interval]", "Reading", "n_rep", "n_img"]
        body = []
        for metric in METRICS:
            for method, versus in spec.comparisons():
                for testset in testsets:
                    r = row(method, versus, model, testset, metric)
                    body.append([spec.label(method), spec.label(versus), METRIC_LABELS[metric],
                                 "All" if testset == ALL else testset,
                                 f"{_signed(r['diff'], DIFF_DECIMALS[metric])} {_interval(r, metric)}",
                                 str(r["reading"]), str(int(r["n_replicates"])), str(int(r["n_images"]))])
        lines += _table(header, body, ["l", "l", "l", "l", "r", "l", "r", "r"]) + [""]
    return lines


def _sentences_section(row: _FrameRows, spec: VerdictSpec) -> list[str]:
    """Every method against the reference, then the contrasts, one sentence each (PSNR, all)."""
    lines = [f"### Against {spec.label(spec.reference)} (PSNR, all test sets)", ""]
    for model in spec.models:
        for method in spec.methods:
            if method != spec.reference:
                lines.append("- " + _sentence(row(method, spec.reference, model, ALL, "psnr"), spec, model))
    lines.append("")
    if spec.contrasts:
        lines += ["### Contrasts (PSNR, all test sets)", ""]
        for model in spec.models:
            for a, b in spec.contrasts:
                lines.append("- " + _sentence(row(a, b, model, ALL, "psnr"), spec, model))
        lines.append("")
    return lines


def _method_note(spec: VerdictSpec) -> list[str]:
    return ["### Method", "",
            f"Intervals are {spec.level * 100:g}% percentile intervals of a hierarchical bootstrap over replicates "
            f"and test images ({spec.n_boot} draws, seed {spec.seed}): each draw resamples the replicates (model "
            f"seeds) and the test images with replacement, independently, and averages the paired differences "
            f"(same replicate number, same image) over the drawn cells. Differences use the replicates both methods "
            f"have; means use all of a method's replicates. \"better\" / \"worse\": the interval lies above / below "
            f"0; \"not resolved\": it contains 0. Higher is better for PSNR and SSIM. \"All\" pools every image of "
            f"{', '.join(spec.testsets)}.",
            "", f"<!-- generated by idc-workflow {__version__} (idc.report.verdict) -->"]


def render_verdict_markdown(frame: pd.DataFrame, spec: VerdictSpec) -> str:
    """The verdict as a Markdown document (from `verdict_frame`'s frame, or its CSV read back).

    When the positive control (whole - reference, PSNR over all test sets) of some model is not
    resolved as better (its interval contains 0 or lies below it), the document's first line says
    that nothing in it can be read as a difference.
    """
    row = _FrameRows(frame)
    testsets = (ALL, *spec.testsets)
    warnings, controls = _control_lines(row, spec)
    lines = [*warnings, ""] if warnings else []
    if spec.title:
        lines += [f"**{_md_escape(spec.title)}**", ""]
    lines += [line for control in controls for line in (control, "")]
    lines += _means_section(row, spec, testsets)
    lines += _differences_section(row, spec, testsets)
    lines += _dd_ranking_section(row, spec, testsets)
    lines += _sentences_section(row, spec)
    lines += _method_note(spec)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- files


def per_image_from_entries(entries: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """The per-image frame (`PER_IMAGE_COLUMNS`) from `{"method", "model", "replicate", "path"}`
    entries, one per trained model (path: its metrics.csv)."""
    frames = []
    for entry in validate_entries(entries):
        frame = read_metrics_csv(entry["path"])
        frames.append(frame.assign(method=entry["method"], replicate=entry["replicate"], model=entry["model"]))
    if not frames:
        raise ValueError("verdict: no results entries")
    return pd.concat(frames, ignore_index=True)[list(PER_IMAGE_COLUMNS)]


def make_verdict_from_entries(entries: Iterable[Mapping[str, object]], spec: VerdictSpec | Mapping[str, object],
                              out_prefix: str | os.PathLike[str]) -> dict[str, Path]:
    """`make_verdict` from metrics files (`per_image_from_entries`) and a spec or its mapping
    (`VerdictSpec.from_mapping`): the workflow's verdict rule."""
    if not isinstance(spec, VerdictSpec):
        spec = VerdictSpec.from_mapping(spec)
    return make_verdict(per_image_from_entries(entries), spec, out_prefix)


def make_verdict(per_image: pd.DataFrame, spec: VerdictSpec,
                 out_prefix: str | os.PathLike[str]) -> dict[str, Path]:
    """Write `<prefix>.csv` (`verdict_frame`) and `<prefix>.md` (`render_verdict_markdown`),
    each atomically; returns the paths by suffix."""
    frame = verdict_frame(per_image, spec)
    prefix = Path(out_prefix)
    texts = {"csv": frame.to_csv(index=False, float_format="%.10g"), "md": render_verdict_markdown(frame, spec)}
    paths = {suffix: atomic_write_text(prefix.with_name(f"{prefix.name}.{suffix}"), text)
             for suffix, text in texts.items()}
    logger.info("wrote %s.{csv,md}", prefix)
    return paths
