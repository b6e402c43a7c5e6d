"""Test doubles: a small convolutional feature extractor with the interface IDC needs from the SR
teacher.

`features(x)` maps [0,1] images (N,3,h,w) to (N,c,h,w) like SwinIR's body output plus shallow
skip; `layers` lists the building blocks (for feature_layer="first"). The condensation tests use it
where no trained teacher is at hand and speed matters more than the architecture; randomly
initialised from a seed.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class TinyExtractor(nn.Module):
    def __init__(self, channels: int = 8, blocks: int = 2, seed: int = 0) -> None:
        super().__init__()
        gen_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)  # module initialisers draw from the global generator
            self.conv_first = nn.Conv2d(3, channels, 3, padding=1)
            self.layers = nn.ModuleList(_Block(channels) for _ in range(blocks))
            self.conv_after_body = nn.Conv2d(channels, channels, 3, padding=1)
        finally:
            torch.random.set_rng_state(gen_state)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.conv_first(x)
        y = shallow
        for layer in self.layers:
            y = layer(y)
        return self.conv_after_body(y) + shallow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
