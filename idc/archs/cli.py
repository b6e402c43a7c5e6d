"""`python -m idc archs ...`: parameter counts, model-file details, import of released weights."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import torch

from idc.archs.io import import_official_weights, read_model_metadata
from idc.archs.registry import MODEL_PRESETS, build_model

logger = logging.getLogger(__name__)


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--set expects KEY=VALUE (VALUE in JSON), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string such as pixelshuffle


def _params(args: argparse.Namespace) -> int:
    for name in args.models or sorted(MODEL_PRESETS):
        with torch.device("meta"):  # counts without allocating weights
            model = build_model(name)
        print(f"{name:22s} {sum(p.numel() for p in model.parameters()):>12,d}")
    return 0


def _info(args: argparse.Namespace) -> int:
    arch, kwargs, meta = read_model_metadata(args.path)
    extra = {k: v for k, v in meta.items() if k not in ("arch", "kwargs")}
    print(json.dumps({"arch": arch, "kwargs": kwargs, **extra}, indent=2, sort_keys=True))
    return 0


def _import(args: argparse.Namespace) -> int:
    overrides = dict(_parse_override(item) for item in args.set)
    path = import_official_weights(args.src, args.dst, args.model, param_key=args.param_key, **overrides)
    logger.info("wrote %s", path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("archs", help="SR network utilities (parameter counts, weights)")
    sub = parser.add_subparsers(dest="archs_command", metavar="ACTION", required=True)

    p = sub.add_parser("params", help="parameter counts of presets or architectures")
    p.add_argument("models", nargs="*", help=f"names (default: all presets: {', '.join(sorted(MODEL_PRESETS))})")
    p.set_defaults(func=_params)

    p = sub.add_parser("info", help="architecture and constructor arguments stored in a model file")
    p.add_argument("path")
    p.set_defaults(func=_info)

    p = sub.add_parser("import-weights", help="convert a released checkpoint (.pth/.safetensors) to a model file")
    p.add_argument("src", help="released checkpoint (dict with params/params_ema, or a plain state dict)")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--model", required=True, help="preset or architecture name, e.g. swinir_light_x4")
    p.add_argument("--param-key", default=None, help="checkpoint key (default: params_ema, else params)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument overriding the preset (VALUE as JSON)")
    p.set_defaults(func=_import)
