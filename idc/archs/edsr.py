"""EDSR (Lim et al., 2017) with the module layout and arithmetic of BasicSR's `EDSR`.

Baseline: 64 features, 16 blocks, res_scale 1 (1,517,571 parameters at x4).
Large: 256 features, 32 blocks, res_scale 0.1 (43,089,923 parameters at x4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from idc.archs.common import DIV2K_RGB_MEAN, Upsample


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity skip and the branch scaled by `res_scale`; no batch norm."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class EDSR(nn.Module):
    """EDSR for [0,1] inputs: centres by the RGB mean and scales by `img_range` internally."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.img_range = img_range
        self.upscale = upscale
        # A plain attribute, not a buffer: the official state dict does not contain it.
        self.mean = torch.tensor(list(rgb_mean), dtype=torch.float32, device="cpu").view(1, len(rgb_mean), 1, 1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) * self.img_range

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the up-sampler: conv_after_body(body(f0)) + f0 with f0 = conv_first(normalised x)."""
        first = self.conv_first(self._normalise(x))
        return self.conv_after_body(self.body(first)) + first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_last(self.upsample(self.features(x)))
        return out / self.img_range + self.mean.to(out)
