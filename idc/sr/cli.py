"""SR training and testing: ``python -m idc sr train|test CONFIG [--set KEY=VALUE ...]``.

CONFIG is a YAML or JSON mapping. For ``train`` its keys are the fields of
:class:`idc.sr.config.TrainConfig` (omitted ones take the config schema's defaults) and the keyword
arguments of :func:`idc.sr.train.train_sr` (where files go, device, workers); for ``test`` the
keyword arguments of :func:`idc.sr.test.test_sr` (``testsets`` maps a name to
``[hr_dir, lr_dir]``). ``--set`` overrides or adds single keys, the value read as YAML.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

# Exit status of a run stopped by a signal after checkpointing: 128 + signal number, as a shell
# reports a process ended by that signal, so schedulers treat it as a failure to retry.
_SIGNAL_EXIT_BASE = 128
# Keyword arguments that only make sense from Python.
_NOT_FROM_CONFIG = {"step_callback"}


def load_config(path: str | None, overrides: list[str]) -> dict[str, Any]:
    """The mapping in ``path`` (YAML or JSON) updated by ``KEY=VALUE`` overrides."""
    config: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"config file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"config file {file} is not valid YAML/JSON: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"config file {file} must hold a mapping, got {type(loaded).__name__}")
        config.update(loaded or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        config[key] = yaml.safe_load(value)
    return config


def check_keys(config: dict[str, Any], func: Callable[..., Any], *, also: dict[str, bool] | None = None) -> None:
    """Keys that are no keyword-only argument of `func` (nor in `also`: further names mapped to
    whether they are required), and missing required ones, give a ValueError naming them."""
    params = {n: p.default is inspect.Parameter.empty for n, p in inspect.signature(func).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _NOT_FROM_CONFIG}
    params.update(also or {})
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise ValueError(f"unknown {func.__name__} setting(s) {unknown}; allowed: {sorted(params)}")
    missing = [n for n, required in params.items() if required and n not in config]
    if missing:
        raise ValueError(f"missing {func.__name__} setting(s) {missing}")


def train_arguments(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A flat ``sr train`` mapping (also what :func:`idc.sr.distributed.launch_training` hands
    each rank) as (TrainConfig of its fields, the other keyword arguments of train_sr)."""
    from idc.sr.config import TrainConfig
    from idc.sr.train import train_sr

    fields = {f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
              for f in dataclasses.fields(TrainConfig)}
    check_keys(config, train_sr, also=fields)
    cfg = TrainConfig(**{k: v for k, v in config.items() if k in fields})
    return cfg, {k: v for k, v in config.items() if k not in fields}


def _train(args: argparse.Namespace) -> int:
    from idc.sr.train import NonFiniteLossError, TrainingInterrupted, train_sr

    cfg, run = train_arguments(load_config(args.config, args.set))
    try:
        train_sr(cfg, **run)
    except TrainingInterrupted as err:
        logger.error("%s", err)
        return _SIGNAL_EXIT_BASE + err.signum
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _test(args: argparse.Namespace) -> int:
    from idc.sr.test import test_sr

    config = load_config(args.config, args.set)
    check_keys(config, test_sr)
    testsets = config.get("testsets")
    if not isinstance(testsets, dict) or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in testsets.values()):
        raise ValueError("testsets must map each test-set name to [hr_dir, lr_dir]")
    config["testsets"] = {name: tuple(dirs) for name, dirs in testsets.items()}
    frame = test_sr(**config)
    print(frame.groupby("testset", sort=False)[["psnr", "ssim"]].mean().to_string())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sr", help="train and test SR networks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="sr_command", metavar="SR_COMMAND", required=True)
    for name, func, text in (
        ("train", _train, "train a network on a patch store (resumes from its checkpoint)"),
        ("test", _test, "score a trained network on test sets, one CSV row per image"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("config", nargs="?", help="YAML/JSON file of keyword arguments")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
        sub.set_defaults(func=func)
