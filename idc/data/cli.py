"""Data-stage commands of ``python -m idc``: resize, crop, demo-images, fetch-div2k,
prepare-testset, store-info, export, import-folder."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def cmd_resize(args: argparse.Namespace) -> int:
    """MATLAB bicubic resize of one image; grayscale stays grayscale. When downscaling by an
    integer factor (scale = 1/k) the input is first mod-cropped to a multiple of k (HR rule)."""
    from idc.data.images import read_image, write_png
    from idc.data.imresize import imresize_uint8, modcrop

    img = read_image(args.input, keep_gray=True)
    if args.scale < 1:
        factor = 1.0 / args.scale
        if abs(factor - round(factor)) < 1e-9:
            img = modcrop(img, int(round(factor)))
    out = imresize_uint8(img, args.scale, antialiasing=not args.no_antialias)
    write_png(args.output, out)
    logger.info("%s %s -> %s %s", args.input, img.shape, args.output, out.shape)
    return 0


# Exit status after a stop signal: 128 + signal number, as a shell reports a process ended by it.
_SIGNAL_EXIT_BASE = 128


def _until_interrupted(run) -> int:
    """Run `run()`; a stop signal ends the crop with one line and 128 + signum, no traceback."""
    from idc.data.crop import CropInterrupted

    try:
        run()
    except CropInterrupted as err:
        print(f"error: {err}", file=sys.stderr)
        return _SIGNAL_EXIT_BASE + err.signum
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from idc.data.crop import crop_images_to_store

    return _until_interrupted(lambda: crop_images_to_store(
        args.hr_dir,
        args.output,
        scale=args.scale,
        hr_size=args.hr_size,
        step=args.step,
        thresh=args.thresh,
        lr_dir=args.lr_dir,
        seed=args.seed,
        workers=args.workers,
        source=args.source,
        expected_patches=args.expected_patches,
    ))


def cmd_demo_images(args: argparse.Namespace) -> int:
    from idc.data.demo import build_demo_images

    manifest = build_demo_images(args.out_dir, max_side=args.max_side)
    logger.info(
        "demo images: %d train, %d test in %s",
        len(manifest["train"]),
        len(manifest["test"]),
        args.out_dir,
    )
    return 0


def cmd_fetch_div2k(args: argparse.Namespace) -> int:
    from idc.data.download import DIV2K_BASE_URL, fetch_div2k_parts

    local = {}
    if args.local_dir:
        local["train_HR"] = args.local_dir
    if args.local_lr_dir:
        local["train_LR_bicubic_X4"] = args.local_lr_dir
    dirs = fetch_div2k_parts(
        args.out_dir,
        parts=args.parts,
        local_dirs=local,
        base_url=args.base_url or DIV2K_BASE_URL,
        retries=args.retries,
    )
    for part, path in dirs.items():
        print(f"{part}\t{path}")
    return 0


def cmd_prepare_testset(args: argparse.Namespace) -> int:
    from idc.data.benchmarks import prepare_testset

    prepare_testset(
        args.name,
        args.out_dir,
        hr_dir=args.hr_dir,
        lr_dir=args.lr_dir,
        url=args.url,
        sha256=args.sha256,
        scale=args.scale,
    )
    return 0


def cmd_store_info(args: argparse.Namespace) -> int:
    from idc.data.store import PatchStore

    with PatchStore(args.store) as store:
        info = {
            "path": str(store.path),
            "n": len(store),
            "lr": list(store.lr_shape),
            "hr": list(store.hr_shape),
            "n_images": int(store.image_ids.size),
            "attrs": store.attrs,
        }
        if args.verify:
            info["verified"] = store.verify()  # ValueError naming the store on a mismatch
    print(json.dumps(info, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import yaml

    from idc.data.paired import export_paired

    card = {}
    if args.card:
        try:
            with open(args.card) as fh:
                card = yaml.safe_load(fh) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ValueError(f"card file {args.card} is not valid YAML: {str(err).splitlines()[0]}") from err
        if not isinstance(card, dict):
            raise ValueError(f"card file {args.card} must hold a mapping")
    export_paired(
        args.out_dir,
        args.store,
        indices_path=args.indices,
        scale=args.scale,
        card=card,
        memorisation_path=args.memorisation,
        names_from=args.names_from,
        lr_names=args.lr_names,
        fmt=args.format,
        root=args.root,
        extra_inputs=[args.card] if args.card else [],
    )
    return 0


def cmd_import_folder(args: argparse.Namespace) -> int:
    from idc.data.crop import check_output_path
    from idc.data.paired import import_paired

    # Before the pairs are listed and checked: a store must never land on or among its inputs.
    check_output_path(args.output, input_dirs=[args.hr_dir, args.lr_dir], input_files=[args.meta_info])

    return _until_interrupted(lambda: import_paired(
        args.hr_dir,
        args.output,
        lr_dir=args.lr_dir,
        meta_info=args.meta_info,
        scale=args.scale,
        hr_size=args.hr_size,
        step=args.step,
        workers=args.workers,
    ))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data-stage sub-commands to ``python -m idc``."""
    p = subparsers.add_parser("resize", help="MATLAB-compatible bicubic resize of one image")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--scale", type=_positive_float, required=True, help="e.g. 0.25 for x4 down")
    p.add_argument(
        "--no-antialias", action="store_true", help="no kernel widening when downscaling"
    )
    p.set_defaults(func=cmd_resize)

    p = subparsers.add_parser("crop", help="crop a folder of HR images into an HDF5 patch store")
    p.add_argument("hr_dir", type=Path)
    p.add_argument("output", type=Path, help="patch store (.h5)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--hr-size", type=int, default=256)
    p.add_argument("--step", type=int, default=128)
    p.add_argument("--thresh", type=int, default=0)
    p.add_argument(
        "--lr-dir", type=Path, default=None, help="provided LR images (<stem>x<scale>.png)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--source", default="")
    p.add_argument("--expected-patches", type=int, default=None)
    p.set_defaults(func=cmd_crop)

    p = subparsers.add_parser(
        "demo-images", help="build the embedded demo image set (scikit-image photos)"
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--max-side", type=int, default=320)
    p.set_defaults(func=cmd_demo_images)

    p = subparsers.add_parser("fetch-div2k", help="download (or verify a local copy of) DIV2K")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--parts", nargs="+", default=["train_HR"], help="train_HR valid_HR train_LR_bicubic_X4"
    )
    p.add_argument("--local-dir", type=Path, default=None, help="existing DIV2K_train_HR folder")
    p.add_argument(
        "--local-lr-dir", type=Path, default=None, help="existing DIV2K_train_LR_bicubic/X4 folder"
    )
    p.add_argument("--base-url", default=None)
    p.add_argument("--retries", type=int, default=5)
    p.set_defaults(func=cmd_fetch_div2k)

    p = subparsers.add_parser(
        "prepare-testset", help="write a benchmark set as HR/ + LR_bicubic/X<s>/"
    )
    p.add_argument("name")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--hr-dir", type=Path, default=None)
    p.add_argument("--lr-dir", type=Path, default=None)
    p.add_argument("--url", default=None)
    p.add_argument("--sha256", default=None)
    p.add_argument("--scale", type=int, default=4)
    p.set_defaults(func=cmd_prepare_testset)

    p = subparsers.add_parser("store-info", help="print a patch store's size and attrs as JSON")
    p.add_argument("store", type=Path)
    p.add_argument(
        "--verify", action="store_true", help="compare every dataset with its checksum from creation"
    )
    p.set_defaults(func=cmd_store_info)

    p = subparsers.add_parser(
        "export", help="write a patch store (or a selection of it) as paired PNG folders + card"
    )
    p.add_argument("store", type=Path, help="patch store (.h5)")
    p.add_argument("out_dir", type=Path, help="gets HR/, LR_bicubic/X<s>/, meta_info.txt, dataset_card.yaml")
    p.add_argument("--indices", type=Path, default=None, help="selection: .npy indices into the store")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--card", type=Path, default=None, help="YAML/JSON mapping added to the card")
    p.add_argument("--memorisation", type=Path, default=None, help="memorisation JSON of a synthetic set")
    p.add_argument("--names-from", type=Path, default=None, help="store whose image names name the pairs")
    p.add_argument("--lr-names", choices=["suffix", "same"], default="suffix",
                   help="LR file names: <name>x<s>.png (BasicSR, DIV2K) or the HR file's name (neosr)")
    p.add_argument("--format", choices=["png", "lmdb"], default="png",
                   help="png folders, or LMDB databases in BasicSR's layout (one file each)")
    p.add_argument("--root", type=Path, default=None,
                   help="folder you train from: option files give paths relative to it (default: absolute)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "import-folder", help="crop paired HR/LR folders (BasicSR layout) into a patch store"
    )
    p.add_argument("hr_dir", type=Path)
    p.add_argument("output", type=Path, help="patch store (.h5)")
    p.add_argument("--lr-dir", type=Path, default=None, help="LR images; absent: MATLAB imresize of HR")
    p.add_argument("--meta-info", type=Path, default=None, help="BasicSR meta_info.txt: which pairs, in order")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--hr-size", type=int, default=256)
    p.add_argument("--step", type=int, default=128)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_import_folder)
