"""Table specs that reproduce the paper's Tables 1, 2, 4, 5, 7 and 8 (for `make_tables`).

Method ids follow `idc.report.paper_reference`. A workflow that runs a subset (fewer test sets
or models, e.g. the demo) narrows a copy of a spec with `narrow_spec`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from idc.report.paper_reference import PAPER_MODELS, PAPER_TESTSETS, TABLE1_METHODS

_ABLATION_TESTSETS = ["Set5", "Urban100", "Manga109"]

_SPECS: dict[str, dict[str, object]] = {
    "table1": {
        "title": "Table 1: Comparison with coreset selection and dataset pruning methods, "
        "condense ratio r = 10%. PSNR (dB) and SSIM.",
        "methods": list(TABLE1_METHODS),
        "models": list(PAPER_MODELS),
        "testsets": list(PAPER_TESTSETS),
        "layout": "absolute",
        "testsets_per_block": 3,
        "reference": "table1",
    },
    "table2": {
        "title": "Table 2: Ablation of the IDC components (EDSR-baseline); rows below the "
        "first show differences to IDC.",
        "methods": ["idc", *(f"idc-v{i}" for i in range(1, 8))],
        "models": ["edsr"],
        "testsets": _ABLATION_TESTSETS,
        "layout": "delta",
        "method_labels": {
            "idc": "IDC",
            "idc-v1": "v1 (NCFD)",
            "idc-v2": "v2 (+ local feature)",
            "idc-v3": "v3 (+ unfolding)",
            "idc-v4": "v4 (+ group loss)",
            "idc-v5": "v5 (w/o local feature)",
            "idc-v6": "v6 (w/o unfolding)",
            "idc-v7": "v7 (w/o instance loss)",
        },
        "reference": "table2",
    },
    "table4": {
        "title": "Table 4: Ablation of hyper-parameters (EDSR-baseline); each variant changes "
        "one parameter of the default a0, rows below the first show differences to a0.",
        "methods": ["idc", *(f"idc-a{i}" for i in range(1, 12))],
        "models": ["edsr"],
        "testsets": _ABLATION_TESTSETS,
        "layout": "delta",
        "method_labels": {
            "idc": "a0 (default)",
            "idc-a1": "a1 (patch size 2)",
            "idc-a2": "a2 (patch size 8)",
            "idc-a3": "a3 (kernel size 5)",
            "idc-a4": "a4 (kernel size 9)",
            "idc-a5": "a5 (sampling rate 128)",
            "idc-a6": "a6 (sampling rate 512)",
            "idc-a7": "a7 (w_group 30)",
            "idc-a8": "a8 (w_group 3000)",
            "idc-a9": "a9 (w_pair 30k)",
            "idc-a10": "a10 (w_pair 3000k)",
            "idc-a11": "a11 (first feature layer)",
        },
        "reference": "table4",
    },
    "table5": {
        "title": "Table 5: Choice of the up-sampling SR model, condense ratio r = 10%. "
        "PSNR (dB) and SSIM; best marked.",
        "methods": ["idc-uedsr", "idc-uswinir", "idc"],
        "models": list(PAPER_MODELS),
        "testsets": list(PAPER_TESTSETS),
        "layout": "absolute",
        "mark": "best",
        "testsets_per_block": 3,
        "method_labels": {
            "idc-uedsr": "IDC (EDSR)",
            "idc-uswinir": "IDC (SwinIR)",
            "idc": "IDC (MambaIRv2)",
        },
        "reference": "table5",
    },
    "table7": {
        "title": "Table 7: RLFF against alternative feature transformations (EDSR-baseline); "
        "rows below the first show differences to RLFF.",
        "methods": ["idc", "idc-x1", "idc-x2", "idc-x3"],
        "models": ["edsr"],
        "testsets": _ABLATION_TESTSETS,
        "layout": "delta",
        "method_labels": {
            "idc": "RLFF (default)",
            "idc-x1": "x1 (w/o RLFF)",
            "idc-x2": "x2 (DCT filters)",
            "idc-x3": "x3 (wavelets)",
        },
        "reference": "table7",
    },
    "table8": {
        "title": "Table 8: Condense ratios r = 10% and 1% (SwinIR). PSNR (dB) and SSIM.",
        "methods": ["whole", "random", "random-r1", "dcsr", "dcsr-r1", "idc", "idc-r1"],
        "models": ["swinir"],
        "testsets": list(PAPER_TESTSETS),
        "layout": "absolute",
        "metrics_layout": "side_by_side",
        "method_labels": {
            "whole": "Whole",
            "random": "Random (10%)",
            "random-r1": "Random (1%)",
            "dcsr": "DCSR (10%)",
            "dcsr-r1": "DCSR (1%)",
            "idc": "IDC (10%)",
            "idc-r1": "IDC (1%)",
        },
        "reference": "table8",
    },
}


def paper_table_specs() -> dict[str, dict[str, object]]:
    """Fresh copies of the specs of the paper's tables, keyed `table1` ... `table8`."""
    return copy.deepcopy(_SPECS)


def narrow_spec(
    spec: dict[str, object],
    *,
    methods: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    testsets: Sequence[str] | None = None,
) -> dict[str, object]:
    """A copy of `spec` keeping only the given methods / models / test sets, in spec order.

    For runs that compute part of a table (e.g. the demo: two test sets, one model).
    """
    narrowed = copy.deepcopy(spec)
    for key, keep in (("methods", methods), ("models", models), ("testsets", testsets)):
        if keep is None:
            continue
        current = list(narrowed[key])  # type: ignore[arg-type]
        unknown = [k for k in keep if k not in current]
        if unknown:
            raise ValueError(f"{key}: {unknown[0]!r} is not part of this table")
        narrowed[key] = [k for k in current if k in set(keep)]
        if not narrowed[key]:
            raise ValueError(f"{key}: nothing left to show")
    return narrowed
