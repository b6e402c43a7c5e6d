"""Whole-image SR inference (optionally in overlapping tiles) and per-image PSNR/SSIM on test sets."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from idc.atomic import atomic_path
from idc.data.crop import find_lr_file
from idc.data.images import image_size, list_images, read_image
from idc.data.imresize import modcrop
from idc.device import resolve_device
from idc.progress import ProgressLog
from idc.sr.metrics import calculate_psnr, calculate_ssim

logger = logging.getLogger(__name__)

# Fixed seed for inference: MambaIRv2 draws Gumbel noise in its routing even in eval mode.
INFERENCE_SEED = 0


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _core_weight(start: int, length: int, size: int, margin: int) -> torch.Tensor:
    """1 on the tile's core, 0 within ``margin`` of an edge that is inside the image."""
    w = torch.ones(length)
    if start > 0:
        w[:margin] = 0
    if start + length < size:
        w[length - margin :] = 0
    return w


@torch.no_grad()
def upscale_tensor(
    model: nn.Module, lq: torch.Tensor, *, tile: int | None = None, tile_overlap: int = 32
) -> torch.Tensor:
    """SR of an NCHW [0, 1] batch (not clamped). The model pads to its window multiple itself.

    With ``tile``, the LR image is processed in ``tile`` x ``tile`` windows at stride
    ``tile - tile_overlap``; each window contributes only its core (``tile_overlap // 2`` LR pixels
    are discarded on every side that lies inside the image) and cores that overlap are averaged.
    For a model whose receptive field radius is at most ``tile_overlap // 2`` this equals whole-image
    inference; for attention models it is the usual approximation that bounds memory.
    """
    if tile is None:
        return model(lq)
    if tile <= 0 or not 0 <= tile_overlap < tile:
        raise ValueError(f"need tile > tile_overlap >= 0, got tile={tile}, tile_overlap={tile_overlap}")
    n, c, h, w = lq.shape
    margin = tile_overlap // 2
    stride = tile - tile_overlap
    out = weight = None
    scale = 0
    for top in _tile_starts(h, tile, stride):
        for left in _tile_starts(w, tile, stride):
            patch = lq[..., top : top + tile, left : left + tile]
            result = model(patch)
            if out is None:
                scale = result.shape[-1] // patch.shape[-1]
                out = lq.new_zeros(n, result.shape[1], h * scale, w * scale)
                weight = lq.new_zeros(1, 1, h * scale, w * scale)
            ph, pw = patch.shape[-2:]
            wy = _core_weight(top, ph, h, margin).repeat_interleave(scale).to(lq)
            wx = _core_weight(left, pw, w, margin).repeat_interleave(scale).to(lq)
            wmap = (wy[:, None] * wx[None, :])[None, None]
            sl = (..., slice(top * scale, (top + ph) * scale), slice(left * scale, (left + pw) * scale))
            out[sl] += result * wmap
            weight[sl] += wmap
    assert out is not None and weight is not None
    if bool((weight == 0).any()):
        raise ValueError(f"tile_overlap {tile_overlap} too large for tile {tile}: some pixels have no core")
    return out / weight


def upscale_image(
    model: nn.Module,
    lr_uint8: np.ndarray,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """SR of one uint8 HWC RGB image: float32 HWC in [0, 1] (clamped, not yet rounded).

    Use :func:`to_uint8` to get the uint8 image that metrics are computed on.
    """
    if lr_uint8.ndim != 3 or lr_uint8.shape[2] != 3:
        raise ValueError(f"expected an HWC RGB image, got shape {lr_uint8.shape}")
    device = resolve_device(device)
    x = torch.from_numpy(np.ascontiguousarray(lr_uint8.transpose(2, 0, 1))).float().div(255.0)[None].to(device)
    y = upscale_tensor(model, x, tile=tile, tile_overlap=tile_overlap)
    if not bool(torch.isfinite(y).all()):
        # Rounding NaN to uint8 would give a plausible-looking but meaningless score.
        raise FloatingPointError("model output contains NaN or infinite values")
    return y[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 [0, 255], rounded half to even after clamping (as BasicSR's tensor2img)."""
    return np.clip(np.round(np.asarray(img, np.float64) * 255.0), 0, 255).astype(np.uint8)


def pair_test_images(hr_dir: str | os.PathLike, lr_dir: str | os.PathLike, scale: int) -> list[tuple[str, Path, Path]]:
    """(name, HR path, LR path) for every HR image; the LR file is ``NAMExS.ext`` or ``NAME.ext``
    (benchmark layout ``HR/baby.png`` + ``LR_bicubic/X4/babyx4.png``). Missing, unreadable or
    mis-sized files raise here, from the image headers, before any inference."""
    lr_dir = Path(lr_dir)
    if not lr_dir.is_dir():
        raise FileNotFoundError(f"LR image folder not found: {lr_dir}")
    pairs = []
    for hr in list_images(hr_dir):
        lr = find_lr_file(lr_dir, hr, scale)
        _check_geometry(image_size(hr), image_size(lr), hr, lr, scale)
        pairs.append((hr.stem, hr, lr))
    return pairs


def _check_geometry(hr_size: tuple[int, int], lr_size: tuple[int, int], hr: Path, lr: Path, scale: int) -> None:
    cropped = (hr_size[0] - hr_size[0] % scale, hr_size[1] - hr_size[1] % scale)
    if (lr_size[0] * scale, lr_size[1] * scale) != cropped:
        raise ValueError(f"LR {lr.name} {lr_size} x{scale} does not match mod-cropped HR {hr.name} {cropped}")


def load_test_pair(hr_path: Path, lr_path: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR, mod-cropped HR) as uint8 RGB (grayscale replicated), checked for matching geometry."""
    hr, lr = read_image(hr_path), read_image(lr_path)
    _check_geometry(hr.shape[:2], lr.shape[:2], hr_path, lr_path, scale)
    return lr, modcrop(hr, scale)


def evaluate_images(
    model: nn.Module,
    images: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    crop_border: int,
    test_y_channel: bool,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: torch.device,
    with_ssim: bool = True,
) -> list[dict[str, float | str]]:
    """Per-image PSNR (and SSIM) of the model's uint8-rounded output for ``(name, lr, hr)`` triples,
    HR already mod-cropped.

    Inference runs under a fixed, forked RNG so it neither depends on nor disturbs the caller's.
    """
    rows: list[dict[str, float | str]] = []
    was_training = model.training
    model.eval()
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(INFERENCE_SEED)
            for name, lr, hr in images:
                try:
                    sr = to_uint8(upscale_image(model, lr, tile=tile, tile_overlap=tile_overlap, device=device))
                except FloatingPointError as err:
                    raise FloatingPointError(f"{err} for image {name}") from None
                if sr.shape != hr.shape:
                    raise ValueError(f"model output {sr.shape} for {name} does not match HR {hr.shape}: wrong scale?")
                row: dict[str, float | str] = {"image": name, "psnr": calculate_psnr(sr, hr, crop_border, test_y_channel)}
                if with_ssim:
                    row["ssim"] = calculate_ssim(sr, hr, crop_border, test_y_channel)
                rows.append(row)
    finally:
        model.train(was_training)
    return rows


def load_test_images(
    pairs: Sequence[tuple[str, Path, Path]], scale: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR, mod-cropped HR) for each pair, read one at a time."""
    for name, hr_path, lr_path in pairs:
        yield (name, *load_test_pair(hr_path, lr_path, scale))


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def test_sr(
    *,
    model_path: str | os.PathLike,
    testsets: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]],
    out_csv: str | os.PathLike,
    scale: int = 4,
    crop_border: int = 2,
    test_y_channel: bool = True,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: str = "auto",
) -> pd.DataFrame:
    """Score a saved model on test sets; writes and returns rows ``testset, image, psnr, ssim``.

    ``testsets`` maps a name to ``(hr_dir, lr_dir)``. All files are paired and checked before any
    inference starts. ``crop_border`` defaults to 2, the IDC paper's setting for x4.
    """
    from idc.archs import load_model

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    if not testsets:
        raise ValueError("no test sets given")
    plan = {name: pair_test_images(hr_dir, lr_dir, scale) for name, (hr_dir, lr_dir) in testsets.items()}
    torch_device = resolve_device(device)
    model = load_model(model_path, map_location=torch_device).to(torch_device).eval()
    rows = []
    for name, pairs in plan.items():
        logger.info("testing %s on %s (%d images)", model_path.name, name, len(pairs))
        progress = ProgressLog(logger, f"test {name}", len(pairs), unit="images")
        for row in evaluate_images(
            model, load_test_images(pairs, scale), crop_border=crop_border, test_y_channel=test_y_channel,
            tile=tile, tile_overlap=tile_overlap, device=torch_device,
        ):
            rows.append({"testset": name, **row})
            logger.info("%s/%s: PSNR %.4f dB, SSIM %.4f", name, row["image"], row["psnr"], row["ssim"])
            progress.update()
    frame = pd.DataFrame(rows, columns=["testset", "image", "psnr", "ssim"])
    write_csv_atomic(frame, out_csv)
    for name, group in frame.groupby("testset", sort=False):
        logger.info("%s: mean PSNR %.4f dB, SSIM %.4f", name, group["psnr"].mean(), group["ssim"].mean())
    return frame


# Not a pytest test, despite the name.
test_sr.__test__ = False  # type: ignore[attr-defined]
