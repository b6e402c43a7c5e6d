"""`python -m idc select`: run one selection baseline on a patch store."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from idc.select.methods import SELECTION_METHODS
from idc.select.stage import FEATURE_SOURCES


def _parse_hparam(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    # YAML scalars: 10 -> int, 0.5 -> float, true -> bool, median -> str.
    return key, yaml.safe_load(value)


def _run(args: argparse.Namespace) -> int:
    from idc.select.stage import select_baseline

    select_baseline(
        store_path=args.store,
        method=args.method,
        ratio=args.ratio,
        pairs=args.pairs,
        out_path=args.out,
        seed=args.seed,
        n_splits=args.n_splits,
        feature_source=args.features,
        teacher_path=args.teacher,
        batch_size=args.batch_size,
        device=args.device,
        **dict(args.hparam),
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select",
        help="select a ratio (or a number of pairs) of a patch store with Random/Herding/K-Center/DCSR",
        description="Select ratio x N (or --pairs) patches of a patch store under the paper's 20-group "
        "protocol; writes sorted int64 indices (.npy) and a .json record beside them.",
    )
    parser.add_argument("--store", required=True, help="patch store (HDF5)")
    parser.add_argument("--method", required=True, choices=SELECTION_METHODS)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--ratio", type=float, help="fraction kept, in (0, 1)")
    size.add_argument("--pairs", type=int, help="number of pairs kept (e.g. the size of a set to compare with)")
    parser.add_argument("--out", required=True, help="output index file (.npy)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--n-splits", type=int, default=20, help="random groups (paper: 20)")
    parser.add_argument("--features", choices=FEATURE_SOURCES, default="teacher",
                        help="feature space of herding/kcenter")
    parser.add_argument("--teacher", default=None, help="teacher model file (idc.archs.save_model)")
    parser.add_argument("--batch-size", type=int, default=256, help="teacher feature batch size")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--hparam", action="append", type=_parse_hparam, default=[], metavar="KEY=VALUE",
                        help="selector hyper-parameter, e.g. rule=deepcore or threshold=median (repeatable)")
    parser.set_defaults(func=_run)
