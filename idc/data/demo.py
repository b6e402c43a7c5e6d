"""The embedded demo image set: scikit-image's bundled colour photographs, no download needed.

Fixed split (documented here and in the manifest):

* train: astronaut, rocket, motorcycle_left, motorcycle_right, hubble_deep_field,
  immunohistochemistry, retina (7 photos)
* test: coffee, chelsea (2 photos; neither scene appears in train: the two motorcycle views are
  both in train)

Images whose longer side exceeds ``max_side`` are downscaled with our MATLAB ``imresize`` (scale
``max_side / longer side``) so the whole demo workflow runs in minutes on a CPU; every image is
then mod-cropped to ``mod`` (4) so HR/LR x4 pairs are exact. Output: ``out_dir/train/HR/*.png``,
``out_dir/test/HR/*.png`` and ``out_dir/demo_images.json``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from idc import __version__
from idc.data.images import read_image, write_png
from idc.data.imresize import imresize_uint8, modcrop, output_size

__all__ = ["DEMO_TRAIN", "DEMO_TEST", "SKIMAGE_FILES", "build_demo_images"]

logger = logging.getLogger(__name__)

# Name -> file in skimage/data (bundled with the wheel; no pooch download).
SKIMAGE_FILES = {
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "retina": "retina.jpg",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
}
DEMO_TRAIN = (
    "astronaut",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
DEMO_TEST = ("coffee", "chelsea")


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def build_demo_images(out_dir: str | os.PathLike, *, max_side: int = 320, mod: int = 4) -> dict:
    """Write the demo set (see module docstring) and return its manifest::

        {"train": [Path, ...], "test": [Path, ...], "max_side": int, "images": {name: {...}}}

    Deterministic: same scikit-image files and arguments give byte-identical PNGs.
    """
    out_dir = Path(out_dir)
    if max_side < mod:
        raise ValueError(f"demo images: max_side {max_side} is smaller than mod {mod}")
    data_dir = _skimage_data_dir()
    missing = [f for f in SKIMAGE_FILES.values() if not (data_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-image data files missing in {data_dir}: {missing}")
    manifest: dict = {
        "train": [],
        "test": [],
        "max_side": max_side,
        "mod": mod,
        "images": {},
        "created_by": f"idc-workflow {__version__}",
    }
    for split, names in (("train", DEMO_TRAIN), ("test", DEMO_TEST)):
        for name in names:
            src = data_dir / SKIMAGE_FILES[name]
            img = read_image(src)
            h, w = img.shape[:2]
            scale = 1.0
            if max(h, w) > max_side:
                scale = max_side / max(h, w)
                while output_size(max(h, w), scale) > max_side:  # guard ceil() against rounding up
                    scale = float(np.nextafter(scale, 0.0))
                img = imresize_uint8(img, scale)
            img = modcrop(img, mod)
            path = write_png(out_dir / split / "HR" / f"{name}.png", img)
            manifest[split].append(path)
            manifest["images"][name] = {
                "split": split,
                "source": src.name,
                "original_hw": [h, w],
                "scale": scale,
                "hw": list(img.shape[:2]),
            }
            logger.info("demo %s image %s: %dx%d -> %dx%d", split, name, h, w, *img.shape[:2])
    text = dict(
        manifest, train=[str(p) for p in manifest["train"]], test=[str(p) for p in manifest["test"]]
    )
    (out_dir / "demo_images.json").write_text(json.dumps(text, indent=2) + "\n")
    return manifest
