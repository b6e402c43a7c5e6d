"""``python -m idc plan --configfile FILE [--tables T ...]``: the cost plan of a configuration."""

from __future__ import annotations

import argparse
import math


def _plan(args: argparse.Namespace) -> int:
    from idc.config import ConfigError, load_config
    from idc.plan import format_alternatives, format_plan, load_table, plan, weights_alternatives

    if not math.isfinite(args.gpu_mem_gib) or args.gpu_mem_gib <= 0:
        raise ValueError(f"--gpu-mem-gib must be a positive number of GiB, got {args.gpu_mem_gib}")
    try:
        config = load_config(*args.configfile)
    except ConfigError as err:
        # Errors about one file name it already; validation errors name the key, not the file.
        message = str(err)
        named = any(message.startswith(f"{path}:") for path in args.configfile)
        raise ValueError(message if named else f"{args.configfile[-1]}: {message}") from None
    table = load_table(args.throughput) if args.throughput else None
    rows = plan(config, table, tables=args.tables)
    print(f"Cost plan of {', '.join(args.configfile)} (targets: {', '.join(args.tables or config['targets'])})\n")
    print(format_plan(rows, gpu_mem_gib=args.gpu_mem_gib))
    alternatives = format_alternatives(rows, weights_alternatives(config, rows, table or load_table()))
    if alternatives:
        print("\n" + alternatives)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    text = "jobs, GPUs per job, hours and GPU-hours per rule, before submitting"
    parser = subparsers.add_parser("plan", help=text, description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                        help="workflow config file(s), later ones update earlier ones")
    parser.add_argument("--tables", nargs="+", help="cost only these tables (default: the config's targets)")
    parser.add_argument("--gpu-mem-gib", type=float, default=80.0, help="memory of one GPU, for the fit check")
    parser.add_argument("--throughput", help="another throughput table (default: idc/plan/throughput.yaml)")
    parser.set_defaults(func=_plan)
