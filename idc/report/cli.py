"""`python -m idc tables ...` and `python -m idc figures ...`: the report stage by hand.

tables, from a JSON manifest `{"entries": [{"method", "model", "path"}...], "tables": {name: spec}}`:
    python -m idc tables --manifest report.json --out-dir results/demo/tables
tables, one table from explicit inputs (metrics files or a long-format results CSV):
    python -m idc tables --entry idc edsr results/demo/sr/idc/edsr/metrics.csv ... \\
        --methods random idc --models edsr --testsets Set5 Set14 --title "Table 1" --out t1
figures:
    python -m idc figures patches --store condensed.h5 --image-id 3 --out p.png
    python -m idc figures trajectories --curve IDC idc.csv --curve Random rnd.csv --out t.png
    python -m idc figures losses --log condense/idc/0001.json ... --out losses.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from idc.atomic import atomic_write_text
from idc.report import figures
from idc.report.paper_reference import PAPER_TABLES
from idc.report.results import check_run_folder, collect_results, read_results_csv, summarise_run
from idc.report.tables import (
    LAYOUTS,
    MARKINGS,
    METRICS_LAYOUTS,
    TableSpec,
    make_tables,
    render_table,
    write_table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_tables(subparsers)
    _register_figures(subparsers)
    _register_run_summary(subparsers)


def _register_run_summary(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run-summary", help="Markdown record of a finished run (tables, times, seeds)")
    p.add_argument("results_dir", type=Path, help="results/<run>")
    p.add_argument("--configfile", type=Path, required=True)
    p.add_argument("--command", required=True, help="the command that produced the run")
    p.add_argument("--out", type=Path, help="write here (default: stdout)")
    p.add_argument("--figures", type=Path, help="write the condensation convergence figure into this folder")
    p.add_argument("--link-base", type=Path,
                   help="folder of the document the record goes into (figure links are relative to it; "
                        "default: the folder of --out, else the current folder)")
    p.add_argument("--trajectories", action="store_true",
                   help="add the validation PSNR of every table row at each logged training step")
    p.add_argument("--repo", type=Path,
                   help="the checkout the run was made from, whose commit the record names (default: the "
                        "current folder)")
    p.set_defaults(func=_run_summary)


def _run_summary(args: argparse.Namespace) -> int:
    check_run_folder(args.results_dir, args.configfile)
    if args.repo is not None and not (args.repo / ".git").exists():
        raise ValueError(f"--repo {args.repo} is not a git checkout (no .git)")
    text = summarise_run(args.results_dir, configfile=args.configfile, command=args.command,
                         repo=args.repo or Path("."),
                         figures_dir=args.figures, trajectories=args.trajectories,
                         link_base=args.link_base or (args.out.parent if args.out else Path(".")))
    if args.out:
        atomic_write_text(args.out, text + "\n")
    else:
        print(text)
    return 0


def _register_tables(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tables",
        help="result tables (CSV, Markdown, LaTeX) laid out like the paper",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", type=Path, help="JSON with 'entries' and 'tables' (see above)")
    p.add_argument("--out-dir", type=Path, help="with --manifest: where <name>.{csv,md,tex} go")
    p.add_argument(
        "--entry",
        nargs=3,
        action="append",
        metavar=("METHOD", "MODEL", "METRICS_CSV"),
        help="one trained model's per-image metrics (repeatable)",
    )
    p.add_argument("--results", type=Path, help="long-format results CSV instead of --entry")
    p.add_argument("--out", type=Path, help="output prefix: writes OUT.csv, OUT.md, OUT.tex, OUT.html")
    p.add_argument("--methods", nargs="+", help="row order")
    p.add_argument("--models", nargs="+", help="model column order")
    p.add_argument("--testsets", nargs="+", help="test set column order")
    p.add_argument("--title", default="Results")
    p.add_argument("--layout", choices=LAYOUTS, default="absolute")
    p.add_argument("--metrics-layout", choices=METRICS_LAYOUTS)
    p.add_argument("--mark", choices=MARKINGS)
    p.add_argument("--reference", choices=sorted(PAPER_TABLES), help="add the paper's rows")
    p.set_defaults(func=_run_tables)


def _run_tables(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        if args.out_dir is None:
            raise ValueError("--manifest needs --out-dir")
        if not args.manifest.is_file():
            raise FileNotFoundError(f"manifest not found: {args.manifest}")
        try:
            manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.manifest}: not valid JSON ({err.msg})") from None
        if not isinstance(manifest, dict) or set(manifest) != {"entries", "tables"}:
            raise ValueError(f"{args.manifest}: needs exactly the keys 'entries' and 'tables'")
        make_tables(entries=manifest["entries"], out_dir=args.out_dir, tables=manifest["tables"])
        return 0
    for option in ("out", "methods", "models", "testsets"):
        if getattr(args, option) is None:
            raise ValueError(f"--{option} is required without --manifest")
    if (args.entry is None) == (args.results is None):
        raise ValueError("give either --entry (repeatable) or --results")
    if args.results is not None:
        results = read_results_csv(args.results)
    else:
        results = collect_results(
            [{"method": m, "model": mo, "path": p} for m, mo, p in args.entry]
        )
    spec = TableSpec.from_mapping(
        args.out.name,
        {
            "methods": args.methods,
            "models": args.models,
            "testsets": args.testsets,
            "title": args.title,
            "layout": args.layout,
            "metrics_layout": args.metrics_layout,
            "mark": args.mark,
            "reference": args.reference,
        },
    )
    write_table(render_table(results, spec), args.out)
    return 0


def _register_figures(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("figures", help="patch grids, validation trajectories, loss curves")
    kinds = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    patches = kinds.add_parser("patches", help="LR/HR patches of one instance of a patch store")
    patches.add_argument("--store", type=Path, required=True, help="HDF5 patch store")
    patches.add_argument("--image-id", type=int, required=True)
    patches.add_argument("--out", type=Path, required=True)
    patches.add_argument("--title")
    patches.add_argument("--max-patches", type=int, default=32)
    patches.set_defaults(func=_run_patches)

    traj = kinds.add_parser("trajectories", help="validation PSNR against training step")
    traj.add_argument(
        "--curve",
        nargs=2,
        action="append",
        required=True,
        metavar=("LABEL", "CSV"),
        help="a trajectory.csv (step, psnr) and its legend label (repeatable)",
    )
    traj.add_argument("--out", type=Path, required=True)
    traj.add_argument("--title", default="Validation trajectory")
    traj.set_defaults(func=_run_trajectories)

    losses = kinds.add_parser("losses", help="condensation losses from per-instance logs")
    losses.add_argument("--log", type=Path, nargs="+", required=True)
    losses.add_argument("--out", type=Path, required=True)
    losses.add_argument("--title", default="Condensation losses")
    losses.set_defaults(func=_run_losses)


def _run_patches(args: argparse.Namespace) -> int:
    figures.plot_store_patches(
        args.store, args.image_id, args.out, title=args.title, max_patches=args.max_patches
    )
    return 0


def _run_trajectories(args: argparse.Namespace) -> int:
    labels = [label for label, _ in args.curve]
    if len(set(labels)) != len(labels):
        raise ValueError("each --curve needs its own label")
    figures.plot_trajectory_files(dict(args.curve), args.out, args.title)
    return 0


def _run_losses(args: argparse.Namespace) -> int:
    figures.plot_loss_curves(args.log, args.out, title=args.title)
    return 0
