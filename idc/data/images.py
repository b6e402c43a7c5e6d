"""Reading, writing and listing 8-bit RGB images, with one documented policy for odd inputs.

Policy of :func:`read_image` (the SR pipeline works on 8-bit RGB only):

* 8-bit RGB: returned as is.
* Grayscale (8-bit ``L`` or 1-bit): converted to RGB by replicating the channel (Set14 'bridge').
  ``keep_gray=True`` returns HxW instead (the ``resize`` command keeps grayscale grayscale).
* Palette images: expanded to RGB.
* Alpha (RGBA, LA, palette with transparency): accepted and dropped only when the image is fully
  opaque (every alpha value 255); otherwise refused, because compositing onto a background would
  invent pixel values.
* 16-bit or float images: refused (DIV2K and the benchmarks are 8-bit; a silent down-conversion
  would change the data the paper's numbers rest on). Convert them explicitly first.
* Multi-frame files (TIFF pages, animations): refused, not read as their first frame.
* EXIF orientation other than 1 (pixels stored rotated or mirrored): refused; applying it would
  change the image's shape against its LR file and the benchmarks' convention of stored pixels.
* An embedded ICC profile other than sRGB (e.g. Adobe RGB) on an RGB or CMYK image: applied, so
  the values are sRGB like every other image's (relative colorimetric); on other modes, or
  unreadable: refused. sRGB profiles change nothing.
* More pixels than PIL's decompression-bomb limit, or text chunks that decompress beyond its
  limit: refused before decoding.
* Missing file: FileNotFoundError; non-image, truncated or unreadable file: one-line ValueError
  naming the file.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from idc.atomic import atomic_write_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "image_size",
    "write_png",
    "list_images",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
# PIL modes that hold more than 8 bits per sample.
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "RGB;16", "RGBA;16"}


def _png_bit_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR chunk (PIL silently reduces 16-bit RGB PNGs to 8 bits)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">B", head[24:25])[0]


def _open_checked(path: Path) -> Image.Image:
    """Open an image lazily, refusing what the policy refuses (before decoding pixels)."""
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ValueError(f"not an image (unrecognised format): {path}") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"image refused, too many pixels to decode safely: {path}: {err}") from None
    except (OSError, ValueError, SyntaxError) as err:
        # ValueError: e.g. a PNG text chunk that decompresses beyond PIL's limit.
        raise ValueError(f"unreadable image {path}: {err}") from None
    problem = _refusal(im, path)
    if problem:
        im.close()
        raise ValueError(f"{problem}: {path}")
    return im


def _refusal(im: Image.Image, path: Path) -> str | None:
    """Why the policy refuses an opened image (header and metadata only), or None."""
    if im.mode in _HIGH_DEPTH_MODES or (im.format == "PNG" and (_png_bit_depth(path) or 8) > 8):
        return "16-bit/float image refused (only 8-bit images are supported; convert it first)"
    if getattr(im, "n_frames", 1) > 1:
        return f"image with {im.n_frames} frames refused (one image per file; split it first)"
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: orientation unknown
        return "image with an unreadable EXIF block refused (its orientation is unknown)"
    if orientation not in (1, None):
        return (f"image with EXIF orientation {orientation} refused (its pixels are stored rotated or "
                "mirrored; rotate them and drop the tag first)")
    profile = _icc_profile(im)
    if profile is False:
        return "image with an unreadable ICC colour profile refused"
    if profile is not None and im.mode not in ("RGB", "CMYK"):
        return f"{im.mode} image with a non-sRGB colour profile refused (convert it to sRGB first)"
    return None


def _icc_profile(im: Image.Image) -> ImageCms.ImageCmsProfile | None | bool:
    """The image's embedded ICC profile when it is not sRGB (None: none or sRGB; False: unreadable)."""
    icc = im.info.get("icc_profile")
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile)
    except (OSError, ImageCms.PyCMSError):
        return False
    return None if "srgb" in description.lower() else profile


def _to_srgb(im: Image.Image) -> Image.Image:
    """Apply a non-sRGB embedded profile (e.g. Adobe RGB), so pixel values mean sRGB as for every
    other image (relative colorimetric, the usual intent for photographs)."""
    profile = _icc_profile(im)
    if profile is None:
        return im
    return ImageCms.profileToProfile(
        im, profile, ImageCms.createProfile("sRGB"), outputMode="RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header only, applying the same refusals as :func:`read_image`.

    Cheap: no pixel data is decoded, so a whole folder can be validated before long work starts.
    """
    path = Path(path)
    im = _open_checked(path)
    with im:
        width, height = im.size
    return height, width


def image_channels(path: str | os.PathLike) -> int:
    """Channels of the stored image, as BasicSR's meta-info records them (OpenCV's reading, from
    the header only): 1 for grayscale, 3 for RGB and palette images, 4 with an alpha channel."""
    path = Path(path)
    im = _open_checked(path)
    with im:
        if im.mode == "P":
            return 4 if "transparency" in im.info else 3
        return len(im.getbands())


def read_image(path: str | os.PathLike, *, keep_gray: bool = False) -> np.ndarray:
    """Read an image as uint8 HxWx3 RGB (policy in the module docstring).

    With ``keep_gray=True`` a grayscale file is returned as uint8 HxW (colour files stay HxWx3).
    """
    path = Path(path)
    im = _open_checked(path)
    with im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PIL warns on some ancillary chunks
                im.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"unreadable or truncated image {path}: {err}") from None
        im = _to_srgb(im)
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            mode = im.mode
        if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
            alpha = np.asarray(im.getchannel("A"))
            if alpha.min() < 255:
                raise ValueError(
                    f"image with transparent pixels refused (alpha < 255 found): {path}"
                )
            im = im.convert("L" if mode in ("LA", "La") else "RGB")
            mode = im.mode
        if mode == "1":
            im = im.convert("L")
            mode = "L"
        if mode == "L":
            gray = np.asarray(im, dtype=np.uint8)
            return gray.copy() if keep_gray else np.repeat(gray[:, :, None], 3, axis=2)
        if mode != "RGB":
            im = im.convert("RGB")  # CMYK, YCbCr, ...
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"unexpected image layout {arr.shape} in {path}")
    return arr.copy()


def write_png(path: str | os.PathLike, img: np.ndarray, *, compress_level: int = 6) -> Path:
    """Write uint8 HxW or HxWx3 as PNG atomically (`idc.atomic`: temporary file, then rename).

    Parent folders are created. Returns the path written.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"write_png: the output path {path} is a folder")
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"write_png: expected uint8, got {img.dtype} for {path}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"write_png: expected HxW or HxWx3, got shape {img.shape} for {path}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(
        buf, format="PNG", compress_level=compress_level
    )
    return atomic_write_bytes(path, buf.getvalue())


def list_images(directory: str | os.PathLike) -> list[Path]:
    """Image files of a folder, sorted by file name (the order defines image ids).

    Hidden files (``.name``) and plain sub-folders are ignored. A missing folder is a FileNotFoundError;
    an empty folder, a file whose suffix is not an image suffix (``IMAGE_SUFFIXES``), a symbolic
    link whose target is missing or is a folder, a folder named like an image, a FIFO or device, or two files with the same stem (``b.png`` and ``b.jpg``, also
    differing only in case: the stem names the image everywhere downstream) is a ValueError
    naming them, so stray files are never silently skipped or merged.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    for p in entries:
        if p.is_symlink() and not p.exists():
            raise ValueError(f"broken symbolic link (target missing) in image folder: {p}")
        # Plain sub-folders are ignored (BasicSR layouts nest LR folders); anything else that is
        # not a regular file would be skipped without a word, so it is named instead.
        if p.is_dir() and p.is_symlink():
            raise ValueError(f"symbolic link to a folder in image folder (not an image): {p}")
        if p.is_dir() and p.suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"a folder named like an image in image folder: {p}")
        if not p.is_dir() and not p.is_file():
            raise ValueError(f"not a regular file (FIFO, socket or device) in image folder: {p}")
    files = [p for p in entries if p.is_file()]
    stems: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"not an image file (suffix {p.suffix or 'none'!r}) in image folder: {p}"
            )
        other = stems.setdefault(p.stem.casefold(), p)
        if other is not p:
            raise ValueError(
                f"two images with the same name in {directory}: {other.name} and {p.name} "
                "(one image per name; rename or remove one)"
            )
    if not files:
        raise ValueError(f"no images in folder: {directory}")
    return files
