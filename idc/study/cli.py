"""`python -m idc condense-study run | report`: run the settings study, or write its document."""

from __future__ import annotations

import argparse


def _condense_study(args: argparse.Namespace) -> int:
    from idc.study.document import write_study_document
    from idc.study.run import run_study

    if args.action == "run":
        run_study(args.study)
    else:
        print(write_study_document(args.study, args.doc))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("condense-study", help="IDC: the condensation settings study (run it, or write its document)")
    p.add_argument("action", choices=["run", "report"])
    p.add_argument("--study", required=True, help="study YAML (config/condensation-study.yaml)")
    p.add_argument("--doc", default="docs/condensation-study.md", help="document to write (report)")
    p.set_defaults(func=_condense_study)
