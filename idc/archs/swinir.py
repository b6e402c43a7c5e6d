"""SwinIR (Liang et al., 2021) with the module layout and arithmetic of the official `SwinIR`.

Lightweight x4: embed 60, depths 4x6, heads 6, window 8, `pixelshuffledirect` (929,628 parameters,
of which 32,400 are relative-position-bias entries). Classical x4: embed 180, depths 6x6,
`pixelshuffle`. The shifted-window attention mask is derived from the token grid on the fly, so it
is not part of the state dict (official checkpoints carry it as `attn_mask` buffers, which
`load_official_weights` ignores).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from idc.archs.attention import relative_bias, window_attention
from idc.archs.common import DIV2K_RGB_MEAN, ReconstructionHead, pad_to_multiple


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def _linspace(start: float, end: float, n: int) -> list[float]:
    """Like torch.linspace(...).tolist(), without a tensor (so models can be built on `meta`)."""
    if n == 1:
        return [float(start)]
    return [start + (end - start) * i / (n - 1) for i in range(n)]


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`."""
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def relative_position_index(wh: int, ww: int) -> torch.Tensor:
    """(wh*ww, wh*ww) int64 index into the (2wh-1)(2ww-1) bias table, as in Swin Transformer."""
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    return rel.sum(-1)


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: torch.device | None = None) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask (0 / -100) that keeps attention inside the regions a cyclic
    shift by `shift` brings together."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    windows = window_partition(img, ws).view(-1, ws * ws)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(wh, ww))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused_attention = False  # see idc.archs.attention.set_window_attention
        self.head_dim_multiple = 1
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = relative_bias(self.relative_position_bias_table, self.relative_position_index, n)
        x = window_attention(q, k, v, bias, mask, self.scale, self.fused_attention, dropout=self.attn_drop,
                             head_dim_multiple=self.head_dim_multiple)
        x = x.transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, norm_layer: type[nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:
            # A window covering the whole training patch: no shift (official behaviour).
            shift_size = 0
            window_size = min(input_resolution)
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, _pair(window_size), num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None  # the official all-zero mask: adding it changes nothing
        if torch.compiler.is_compiling():
            # Built inside the graph: a lookup in the cache would become a guard that the first
            # call's own insertion breaks, and every compiled extractor would compile twice.
            return shifted_window_mask(h, w, self.window_size, self.shift_size, device)
        key = (h, w, str(device))
        if key not in self._mask_cache:
            self._mask_cache = {key: shifted_window_mask(h, w, self.window_size, self.shift_size, device)}
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)
        windows = self.attn(windows, mask=self._mask(h, w, x.device))
        x = window_reverse(windows.view(-1, ws, ws, c), ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float,
                 attn_drop: float, drop_path: Sequence[float], norm_layer: type[nn.Module],
                 use_checkpoint: bool) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, qk_scale,
                                 drop, attn_drop, drop_path[i], norm_layer)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(blk, x, x_size, use_reentrant=False)
            else:
                x = blk(x, x_size)
        return x


def _conv_block(dim: int, resi_connection: str) -> nn.Module:
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "3conv":
        # Fewer parameters: bottleneck to dim/4.
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1),
        )
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {resi_connection!r}")


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), row-major."""
    return x.flatten(2).transpose(1, 2)


def _image(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x_size[0], x_size[1])


class PatchEmbed(nn.Module):
    """Image to tokens (patch size 1), with an optional LayerNorm (state-dict key `norm`)."""

    def __init__(self, embed_dim: int, norm_layer: type[nn.Module] | None = None) -> None:
        super().__init__()
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _tokens(x)
        return self.norm(x) if self.norm is not None else x


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin layers, a conv, and a skip."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None, drop: float,
                 attn_drop: float, drop_path: Sequence[float], norm_layer: type[nn.Module],
                 use_checkpoint: bool, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                                         qkv_bias, qk_scale, drop, attn_drop, drop_path, norm_layer,
                                         use_checkpoint)
        self.conv = _conv_block(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return _tokens(self.conv(_image(self.residual_group(x, x_size), x_size))) + x


class SwinIR(ReconstructionHead, nn.Module):
    """SwinIR for [0,1] inputs. `forward` reflect-pads to a multiple of the window and crops."""

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
    ) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError("SwinIR: only patch_size=1 is used by the official models")
        if len(depths) != len(num_heads):
            raise ValueError(f"SwinIR: depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        num_feat = 64
        self.img_range = img_range
        self.mean = (torch.tensor(DIV2K_RGB_MEAN, device="cpu").view(1, 3, 1, 1) if in_chans == 3
                     else torch.zeros(1, 1, 1, 1, device="cpu"))
        self.upscale = upscale
        self.upsampler = upsampler
        self.window_size = window_size
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)

        resolution = _pair(img_size)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        self.ape = ape
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = _linspace(0.0, drop_path_rate, sum(depths))  # stochastic depth rises linearly
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(RSTB(embed_dim, resolution, depth, num_heads[i], window_size, mlp_ratio, qkv_bias,
                                    qk_scale, drop_rate, attn_drop_rate, dpr[start:start + depth], norm_layer,
                                    use_checkpoint, resi_connection))
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = _conv_block(embed_dim, resi_connection)

        self._build_reconstruction(upsampler, embed_dim, num_feat, upscale, in_chans)
        self.apply(self._init_weights)


    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return _image(self.norm(x), x_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # The official model pads the raw [0,1] input (mirror without the edge pixel).
        x = pad_to_multiple(x, self.window_size, "reflect")
        return (x - self.mean.to(x)) * self.img_range

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv_first(x)
        return self.conv_after_body(self.forward_features(first)) + first

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """conv_after_body(forward_features(f0)) + f0, f0 = conv_first(padded, normalised x), at the
        padded size. For `pixelshuffledirect` this is exactly the up-sampler's input; for
        `pixelshuffle` it is the input of `conv_before_upsample`."""
        return self._body(self._prepare(x))

