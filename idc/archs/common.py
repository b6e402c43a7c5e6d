"""Building blocks shared by the SR networks: sub-pixel up-samplers and input padding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# DIV2K RGB mean used by EDSR, SwinIR and MambaIRv2 to centre their inputs.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class Upsample(nn.Sequential):
    """(Conv 3x3 -> PixelShuffle) stages: log2(scale) x2 stages for powers of two, one x3 stage for 3.

    Module indices (0 conv, 1 shuffle, 2 conv, ...) match the official state-dict keys.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers.append(nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1))
                layers.append(nn.PixelShuffle(2))
        elif scale == 3:
            layers.append(nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1))
            layers.append(nn.PixelShuffle(3))
        else:
            raise ValueError(f"upscale {scale} is not supported; use 2^n or 3")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """One conv 3x3 to scale^2 * num_out_ch channels and a PixelShuffle (lightweight SR)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, (scale**2) * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str) -> torch.Tensor:
    """Pad bottom and right of an N x C x H x W tensor so that H and W are multiples of `multiple`.

    `mode="reflect"` mirrors without repeating the edge pixel (SwinIR); `mode="symmetric"` repeats
    it (MambaIRv2 concatenates a flipped copy). Both allow a pad wider than the image by mirroring
    repeatedly, which the official code does not need for its sizes but keeps small inputs legal.
    """
    h, w = x.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "reflect":
        # torch's reflect pad must be smaller than the size; tiny inputs are mirrored in steps.
        while x.shape[-2] < h + pad_h or x.shape[-1] < w + pad_w:
            ph = min(h + pad_h - x.shape[-2], x.shape[-2] - 1)
            pw = min(w + pad_w - x.shape[-1], x.shape[-1] - 1)
            if (ph <= 0 and x.shape[-2] < h + pad_h) or (pw <= 0 and x.shape[-1] < w + pad_w):
                raise ValueError(f"cannot reflect-pad an image of size {h}x{w} (needs at least 2 px per side)")
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return x
    if mode == "symmetric":
        while x.shape[-2] < h + pad_h:
            need = h + pad_h - x.shape[-2]
            x = torch.cat([x, torch.flip(x, [2])[:, :, :need, :]], dim=2)
        while x.shape[-1] < w + pad_w:
            need = w + pad_w - x.shape[-1]
            x = torch.cat([x, torch.flip(x, [3])[:, :, :, :need]], dim=3)
        return x
    raise ValueError(f"unknown padding mode {mode!r}; use 'reflect' or 'symmetric'")


class ReconstructionHead:
    """The image reconstruction shared by SwinIR and MambaIRv2 (official attribute names, so
    state dicts load unchanged): `upsampler` "pixelshuffle" (conv + PixelShuffle stages),
    "pixelshuffledirect" (one conv + PixelShuffle, the light models), "nearest+conv" (x4 only) or
    "" (denoising-style residual). Mixed into an `nn.Module` that provides `_prepare(x)` (pad and
    normalise), `_body(x)` (features), `img_range`, `mean` and `upscale`."""

    def _build_reconstruction(self, upsampler: str, embed_dim: int, num_feat: int, upscale: int,
                              in_chans: int) -> None:
        name = type(self).__name__
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, in_chans)
        elif upsampler == "nearest+conv":
            if upscale != 4:
                raise ValueError(f"{name}: upsampler 'nearest+conv' supports only upscale 4")
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        elif upsampler == "":
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        else:
            raise ValueError(f"{name}: unknown upsampler {upsampler!r}")

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self._prepare(x)
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(self._body(x))))
        elif self.upsampler == "pixelshuffledirect":
            x = self.upsample(self._body(x))
        elif self.upsampler == "nearest+conv":
            x = self.conv_before_upsample(self._body(x))
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:
            x = x + self.conv_last(self._body(x))
        x = x / self.img_range + self.mean.to(x)
        return x[..., : h * self.upscale, : w * self.upscale]
