"""`python -m idc <command>`: the commands of the stage packages on one command line.

Each package in `STAGE_CLI_MODULES` has a module `idc.<stage>.cli` whose function
`register(subparsers)` adds that package's commands at the top level: several commands
(`data`: resize, crop, export, import-folder, ...; `condense`; `study`; `report`), one command (`select`,
`plan`) or one command with sub-commands of its own (`archs`, `sr`). Each command sets `func` to
a callable taking the parsed arguments and returning an exit code; `main` turns a ValueError or
OSError into one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Packages whose `cli` module contributes commands, in help order: the stages, and the settings
# study (`condense-study`) next to the condensation commands it runs.
STAGE_CLI_MODULES = ("data", "archs", "sr", "condense", "study", "select", "report", "plan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m idc", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in STAGE_CLI_MODULES:
        try:
            module = importlib.import_module(f"idc.{stage}.cli")
        except ModuleNotFoundError as err:
            if err.name != f"idc.{stage}.cli":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        # Bad input or a full/unwritable disk: one line naming the culprit, no traceback.
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
