"""The frozen feature extractor as condensation sees it: the first-layer tap, the feature call with
the GPU execution switches, and freezing / restoring the extractor and the global switches
around a run.

One `FeatureCall` serves the real side (once) and the synthetic side (every step), so both pass
through the same numeric path (attention kernel, precision, memory format).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from idc.archs.attention import set_window_attention, window_attention_modules
from idc.condense.config import CondenseConfig

# cuBLAS needs a fixed workspace for deterministic results; it reads this when its first handle
# is created, so it is set before the run touches the GPU.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


class LayerTap:
    """Captures the output of `module.layers[0]` (the first building block) as (N, C, H, W)."""

    def __init__(self, extractor: nn.Module) -> None:
        layers = getattr(extractor, "layers", None)
        if layers is None or len(layers) == 0:
            raise ValueError("condense config: feature_layer='first' needs an extractor with a `layers` list")
        self.out: torch.Tensor | None = None
        self._handle = layers[0].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.out = output[0] if isinstance(output, (tuple, list)) else output

    def take(self, h: int, w: int) -> torch.Tensor:
        out, self.out = self.out, None
        if out is None:
            raise RuntimeError("first-layer features were not captured (layers[0] not called by features())")
        if out.ndim == 4:
            return out[:, :, :h, :w].float()
        if out.ndim == 3:  # token layout (N, L, C) of transformer blocks, possibly padded to a window
            n, length, c = out.shape
            side = math.isqrt(length)
            if length == h * w:
                hp, wp = h, w
            elif side * side == length and side >= max(h, w):
                hp = wp = side
            else:
                raise RuntimeError(f"cannot map {length} tokens of layers[0] onto a {h}x{w} feature map")
            return out.transpose(1, 2).reshape(n, c, hp, wp)[:, :, :h, :w].float()
        raise RuntimeError(f"unexpected layers[0] output shape {tuple(out.shape)}")

    def close(self) -> None:
        self._handle.remove()


class FeatureCall:
    """`extractor.features` with the execution switches of `cfg`: torch.compile (CUDA graphs with
    `compile_mode: reduce-overhead`), channels-last input, bf16 autocast of the extractor. The
    features always come back as float32: the losses and their statistics stay in float32."""

    def __init__(self, extractor: nn.Module, cfg: CondenseConfig, device: torch.device,
                 tap: LayerTap | None) -> None:
        self.tap = tap
        self.device = device
        self.channels_last = cfg.channels_last
        self.autocast = cfg.autocast_bf16
        # A compiled graph would skip the forward hook's Python side effect: no compile with a tap.
        self.compiled = bool(cfg.compile_extractor and tap is None)
        self._plain = extractor.features
        self._fn = torch.compile(self._plain, mode=cfg.compile_mode) if self.compiled else self._plain

    def _forward(self, fn, images: torch.Tensor) -> torch.Tensor:
        """`fn(images)` in the run's memory format and precision, returned as float32."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        precision = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.autocast
                     else contextlib.nullcontext())
        with precision:
            return fn(images).float()

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features f, first-layer features g or None) of a batch of patches (N, 3, h, w)."""
        f = self._forward(self._fn, images)
        g = self.tap.take(f.shape[2], f.shape[3]) if self.tap is not None else None
        return f, g

    @torch.no_grad()
    def batched(self, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features of many patches, `batch` at a time (the real side; no gradients). Not through
        the compiled graph: its shapes differ from the step's, which would compile it again."""
        fs, gs = [], []
        for start in range(0, x.shape[0], batch):
            f = self._forward(self._plain, x[start:start + batch])
            fs.append(f)
            if self.tap is not None:
                gs.append(self.tap.take(f.shape[2], f.shape[3]))
        return torch.cat(fs), (torch.cat(gs) if self.tap is not None else None)


@contextlib.contextmanager
def frozen_extractor(extractor: nn.Module, cfg: CondenseConfig, device: torch.device) -> Iterator[nn.Module]:
    """The extractor on `device` in eval mode with no gradients to its weights, its attention
    path, and the run's global switches (TF32, deterministic algorithms, channels-last weights);
    everything is restored afterwards, also when the run fails."""
    extractor = extractor.to(device).eval()
    grad_flags = [p.requires_grad for p in extractor.parameters()]
    attention_flags = [(m, m.fused_attention, m.head_dim_multiple) for m in window_attention_modules(extractor)]
    tf32_prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    deterministic_prev = (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled(),
                          torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    memory_formats = [(p, p.is_contiguous(memory_format=torch.channels_last)) for p in extractor.parameters()
                      if p.ndim == 4]
    try:
        for p in extractor.parameters():
            p.requires_grad_(False)
        # Real and synthetic features through the same attention path (set before any compile).
        set_window_attention(extractor, fused=cfg.fused_attention, head_dim_multiple=cfg.attention_head_dim_multiple)
        if device.type == "cuda" and cfg.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        if cfg.channels_last:
            extractor.to(memory_format=torch.channels_last)
        yield extractor
    finally:
        for p, flag in zip(extractor.parameters(), grad_flags):
            p.requires_grad_(flag)
        for module, fused, multiple in attention_flags:
            module.fused_attention, module.head_dim_multiple = fused, multiple
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_prev
        torch.use_deterministic_algorithms(deterministic_prev[0], warn_only=deterministic_prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = deterministic_prev[2:]
        if cfg.channels_last:
            for p, was_channels_last in memory_formats:
                if not was_channels_last:
                    p.data = p.data.contiguous()
