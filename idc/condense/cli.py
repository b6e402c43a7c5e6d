"""`python -m idc condense-image | condense-images | upsample-assemble | memorisation`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from idc.condense.config import VARIANTS

logger = logging.getLogger(__name__)

# Exit status of a run stopped by a signal after checkpointing: 128 + signal number, as a shell
# reports a process ended by that signal (and as `sr train` exits), so schedulers retry it.
_SIGNAL_EXIT_BASE = 128


def _load_cfg(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"condense config not found: {path}")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            cfg = yaml.safe_load(text) or {}
        else:
            cfg = json.loads(text)
        if not isinstance(cfg, dict):
            raise ValueError(f"condense config {path} must hold a mapping")
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        cfg[key] = yaml.safe_load(value)
    if args.variant:
        cfg["variant"] = args.variant
    return cfg


def _until_interrupted(run: Any) -> int:
    """Run `run()`; a stop signal (checkpoint written) ends it with one log line and 128 + signum
    instead of a traceback."""
    from idc.condense.condenser import CondensationInterrupted

    try:
        run()
    except CondensationInterrupted as err:
        logger.error("%s; rerun to continue", err)
        return _SIGNAL_EXIT_BASE + err.signum
    return 0


def _condense_image(args: argparse.Namespace) -> int:
    from idc.condense.stage import condense_image

    return _until_interrupted(lambda: condense_image(
        store_path=args.store, image_id=args.image_id, extractor_path=args.extractor, out_path=args.out,
        log_path=args.log, cfg=_load_cfg(args), seed=args.seed, device=args.device, resume_dir=args.resume_dir,
        progress=args.progress))


def _condense_images(args: argparse.Namespace) -> int:
    from idc.condense.stage import condense_images

    return _until_interrupted(lambda: condense_images(
        store_path=args.store, image_ids=args.image_ids, extractor_path=args.extractor, out_paths=args.out,
        log_paths=args.log, cfg=_load_cfg(args), seed=args.seed, device=args.device, resume_dir=args.resume_dir,
        progress=args.progress))


def _upsample_assemble(args: argparse.Namespace) -> int:
    from idc.condense.stage import upsample_and_assemble

    if len(args.synthetic) != len(args.image_ids):
        raise ValueError(f"--synthetic has {len(args.synthetic)} files but --image-ids {len(args.image_ids)} ids")
    upsample_and_assemble(synthetic_paths=args.synthetic, image_ids=args.image_ids, upsampler_path=args.upsampler,
                          out_store=args.out, source=args.source, seed=args.seed, device=args.device,
                          batch_size=args.batch_size, real_store=args.real_store)
    return 0


def _memorisation(args: argparse.Namespace) -> int:
    from idc.condense.stage import memorisation_report

    memorisation_report(synthetic_store=args.synthetic_store, real_store=args.real_store, out_path=args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("condense-image", help="IDC: condense the LR patches of one image")
    p.add_argument("--store", required=True, help="real patch store (HDF5)")
    p.add_argument("--image-id", type=int, required=True)
    p.add_argument("--extractor", required=True, help="feature-extractor teacher (idc.archs safetensors file)")
    p.add_argument("--out", required=True, help="synthetic LR patches (.npy, float32 (n,3,h,w))")
    p.add_argument("--log", required=True, help="per-instance log (JSON)")
    p.add_argument("--config", help="YAML/JSON mapping of CondenseConfig keys (may name a `variant`)")
    p.add_argument("--variant", help=f"named variant: {', '.join(VARIANTS)}; its own changes apply on top of "
                   "--config and --set, as in the workflow")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume-dir", default=None)
    p.add_argument("--progress", action="store_true", help="tqdm progress bar")
    p.set_defaults(func=_condense_image)

    p = subparsers.add_parser("condense-images", help="IDC: condense several images packed in one loop")
    p.add_argument("--store", required=True, help="real patch store (HDF5)")
    p.add_argument("--image-ids", type=int, nargs="+", required=True)
    p.add_argument("--extractor", required=True)
    p.add_argument("--out", nargs="+", required=True, help="one .npy per image id")
    p.add_argument("--log", nargs="+", required=True, help="one JSON log per image id")
    p.add_argument("--config")
    p.add_argument("--variant")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume-dir", default=None)
    p.add_argument("--progress", action="store_true")
    p.set_defaults(func=_condense_images)

    p = subparsers.add_parser("upsample-assemble", help="IDC: up-sample synthetic LR patches, write one store")
    p.add_argument("--synthetic", nargs="+", required=True)
    p.add_argument("--image-ids", nargs="+", type=int, required=True)
    p.add_argument("--upsampler", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--source", default="idc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--real-store", default=None,
                   help="the real patch store condensed: fixes the patch size, bounds each image's count")
    p.set_defaults(func=_upsample_assemble)

    p = subparsers.add_parser("memorisation", help="IDC: nearest-real-patch PSNR of synthetic patches")
    p.add_argument("--synthetic-store", required=True)
    p.add_argument("--real-store", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_memorisation)
