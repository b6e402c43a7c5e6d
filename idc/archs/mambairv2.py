"""MambaIRv2 (Guo et al., 2025) with the module layout and arithmetic of the official code.

Two classes as in the official repository: `MambaIRv2Light` (GatedMLP feed-forward; lightSR x4
configuration: 789,680 parameters) and `MambaIRv2` (ConvFFN; base SR x4: 23,050,713).

Routing (attentive state-space module, ASSM). The official `ASSM.forward` draws Gumbel noise
(`F.gumbel_softmax(hard=True)`) on every call, also in `eval()`: **official inference is random**
(a different draw moves most routes and the output by ~1e-3). It then orders tokens with an
unstable sort, whose tie order is implementation-dependent. Here the behaviour is explicit and
shared by all ASSM modules of a model (`model.set_routing(...)`):

* ``"gumbel"``: official behaviour, noise from the global torch RNG (the same draws as
  `F.gumbel_softmax`).
* ``"gumbel_seeded"``: the same distribution from a private `torch.Generator` (reproducible; the
  noise is drawn on the CPU, so it is the same on every device).
* ``"argmax"``: no noise (deterministic routing by the route logits).

Tokens are ordered with a stable sort by default (`stable_sort=True`, ties in raster order);
`stable_sort=False` calls the official unstable sort. `model.injected_routing(noise, sort_indices)`
replays recorded noise / permutations and `model.recording_routing()` records the route and sort
indices of each ASSM call, which is how the fixtures are matched exactly.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from idc.archs.attention import relative_bias, window_attention
from idc.archs.common import DIV2K_RGB_MEAN, ReconstructionHead, pad_to_multiple
from idc.archs.selective_scan import selective_scan
from idc.archs.swinir import (
    _conv_block,
    _image,
    _pair,
    _tokens,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

ROUTING_MODES = ("gumbel", "gumbel_seeded", "argmax")


class RoutingControl:
    """Routing noise and token ordering shared by all ASSM modules of one model."""

    def __init__(self, mode: str = "gumbel", generator: torch.Generator | None = None,
                 stable_sort: bool = True) -> None:
        self.mode = "gumbel"
        self.generator: torch.Generator | None = None
        self.set(mode, generator)
        self.stable_sort = stable_sort
        self.noise_queue: list[torch.Tensor] | None = None
        self.sort_queue: list[torch.Tensor] | None = None
        self.record: list[dict[str, torch.Tensor]] | None = None

    def set(self, mode: str, generator: torch.Generator | None = None) -> None:
        if mode not in ROUTING_MODES:
            raise ValueError(f"routing mode must be one of {ROUTING_MODES}, got {mode!r}")
        if mode == "gumbel_seeded" and generator is None:
            raise ValueError("routing 'gumbel_seeded' needs a torch.Generator (or a seed via set_routing)")
        self.mode = mode
        self.generator = generator if mode == "gumbel_seeded" else None

    def __deepcopy__(self, memo: dict) -> RoutingControl:
        # torch.Generator cannot be deep-copied: give the copy a generator in the same state.
        new = RoutingControl.__new__(RoutingControl)
        for key, value in self.__dict__.items():
            if key == "generator" and value is not None:
                gen = torch.Generator(device=value.device)
                gen.set_state(value.get_state())
                new.generator = gen
            else:
                setattr(new, key, copy.deepcopy(value, memo))
        return new

    def _noise(self, logits: torch.Tensor) -> torch.Tensor | None:
        if self.noise_queue is not None:
            if not self.noise_queue:
                raise RuntimeError("injected routing noise exhausted: more ASSM calls than noise tensors")
            noise = self.noise_queue.pop(0)
            if noise.shape != logits.shape:
                raise ValueError(f"injected routing noise has shape {tuple(noise.shape)}, "
                                 f"the route logits {tuple(logits.shape)}")
            return noise.to(device=logits.device, dtype=logits.dtype)
        if self.mode == "argmax":
            return None
        if self.mode == "gumbel":
            # Exactly the draw of F.gumbel_softmax: -log(Exponential(1)).
            return -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_().log()
        gen = self.generator
        draw = torch.empty(logits.shape, dtype=logits.dtype, device=gen.device).exponential_(generator=gen)
        return -draw.log().to(logits.device)

    def route(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(straight-through one-hot policy, route index) as `F.gumbel_softmax(hard=True)` computes them."""
        noise = self._noise(logits)
        y_soft = (logits if noise is None else logits + noise).softmax(dim=-1)
        index = y_soft.max(dim=-1, keepdim=True)[1]
        y_hard = torch.zeros_like(logits, memory_format=torch.legacy_contiguous_format).scatter_(-1, index, 1.0)
        return y_hard - y_soft.detach() + y_soft, index.squeeze(-1)

    def order(self, route_index: torch.Tensor) -> torch.Tensor:
        """Permutation that groups tokens by route (the scan order)."""
        if self.sort_queue is not None:
            if not self.sort_queue:
                raise RuntimeError("injected sort permutations exhausted: more ASSM calls than permutations")
            perm = self.sort_queue.pop(0).to(route_index.device)
            if perm.shape != route_index.shape:
                raise ValueError(f"injected sort permutation has shape {tuple(perm.shape)}, "
                                 f"the route index {tuple(route_index.shape)}")
            return perm
        return torch.sort(route_index, dim=-1, stable=self.stable_sort)[1]


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """Per row: inv[perm[i]] = i."""
    ar = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, ar)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, L, C) reordered along L by index (B, L)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(x.shape))


# --------------------------------------------------------------------------------------------
# Feed-forward variants
# --------------------------------------------------------------------------------------------
class DepthwiseConvGELU(nn.Module):
    """Token-layout wrapper of a depthwise conv + GELU (state-dict key `depthwise_conv`)."""

    def __init__(self, hidden_features: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.hidden_features = hidden_features
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden_features, hidden_features, kernel_size, 1, (kernel_size - 1) // 2,
                      groups=hidden_features),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return _tokens(self.depthwise_conv(_image(x, x_size)))


class ConvFFN(nn.Module):
    """fc1 -> GELU -> (+ depthwise conv branch) -> fc2 (MambaIRv2)."""

    def __init__(self, in_features: int, hidden_features: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.dwconv = DepthwiseConvGELU(hidden_features, kernel_size)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x, x_size))


class Gate(nn.Module):
    """Splits channels in halves x1, x2 and returns x1 * dwconv5x5(LayerNorm(x2))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, kernel_size=5, stride=1, padding=2, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x1 * _tokens(self.conv(_image(self.norm(x2), (h, w))))


class GatedMLP(nn.Module):
    """fc1 -> GELU -> Gate -> fc2 (MambaIRv2Light; the gate's kernel is fixed at 5)."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.sg = Gate(hidden_features // 2)
        self.fc2 = nn.Linear(hidden_features // 2, in_features)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        return self.fc2(self.sg(self.act(self.fc1(x)), x_size[0], x_size[1]))


# --------------------------------------------------------------------------------------------
# Attention and state space
# --------------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Window attention on precomputed qkv with a relative-position bias (index passed in)."""

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.proj = nn.Linear(dim, dim)
        self.fused_attention = False  # see idc.archs.attention.set_window_attention
        self.head_dim_multiple = 1
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, qkv: torch.Tensor, rpi: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c3 = qkv.shape
        c = c3 // 3
        qkv = qkv.reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = relative_bias(self.relative_position_bias_table, rpi, n)
        x = window_attention(q, k, v, bias, mask, self.scale, self.fused_attention,
                             head_dim_multiple=self.head_dim_multiple)
        return self.proj(x.transpose(1, 2).reshape(bw, n, c))


class SelectiveScan(nn.Module):
    """One-direction S6 scan over the routed sequence; C is offset by the routed prompt (ASE)."""

    def __init__(self, d_model: int, d_state: int = 16, expand: float = 1.0, dt_min: float = 0.001,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, dt_scale: float = 1.0) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16)
        inner, rank = self.d_inner, self.dt_rank
        # nn.Linear's default init for the input projection, stored stacked as (K=1, out, in).
        bound = 1 / math.sqrt(inner)
        self.x_proj_weight = nn.Parameter(torch.empty(1, rank + 2 * d_state, inner).uniform_(-bound, bound))
        std = rank**-0.5 * dt_scale
        self.dt_projs_weight = nn.Parameter(torch.empty(1, inner, rank).uniform_(-std, std))
        # softplus(bias) log-uniform in [dt_min, dt_max] (inverse softplus of the draw).
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_projs_bias = nn.Parameter((dt + torch.log(-torch.expm1(-dt))).unsqueeze(0))
        # S4D-real initialisation A = -(1..N), kept as log.
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.Ds = nn.Parameter(torch.ones(inner))

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) routed tokens; prompt (B, L, N). Returns (B, L, D)."""
        b, length, d = x.shape
        prompt = prompt.permute(0, 2, 1).reshape(b, 1, self.d_state, length)
        xs = x.permute(0, 2, 1).reshape(b, 1, d, length)
        x_dbl = torch.einsum("b k d l, k c d -> b k c l", xs, self.x_proj_weight)
        dts, bs, cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("b k r l, k d r -> b k d l", dts, self.dt_projs_weight)
        y = selective_scan(
            xs.float().view(b, -1, length),
            dts.contiguous().float().view(b, -1, length),
            -torch.exp(self.A_logs.float()).view(-1, self.d_state),
            bs.float().view(b, 1, -1, length),
            # The official code adds the prompt in raster order to C of the routed sequence.
            cs.float().view(b, 1, -1, length) + prompt,
            self.Ds.float().view(-1),
            z=None,
            delta_bias=self.dt_projs_bias.float().view(-1),
            delta_softplus=True,
        )
        return y.permute(0, 2, 1)


class ASSM(nn.Module):
    """Attentive state-space module: route tokens to prompts, scan them in route order."""

    def __init__(self, dim: int, d_state: int, num_tokens: int = 64, inner_rank: int = 128,
                 mlp_ratio: float = 2.0, routing: RoutingControl | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.num_tokens = num_tokens
        self.inner_rank = inner_rank
        self.d_state = d_state
        hidden = int(dim * mlp_ratio)
        self.selectiveScan = SelectiveScan(d_model=hidden, d_state=d_state, expand=1)
        self.out_norm = nn.LayerNorm(hidden)
        self.act = nn.SiLU()
        self.out_proj = nn.Linear(hidden, dim, bias=True)
        self.in_proj = nn.Sequential(nn.Conv2d(dim, hidden, 1, 1, 0))
        self.CPE = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden))
        self.embeddingB = nn.Embedding(num_tokens, inner_rank)
        nn.init.uniform_(self.embeddingB.weight, -1 / num_tokens, 1 / num_tokens)
        self.route = nn.Sequential(nn.Linear(dim, dim // 3), nn.GELU(), nn.Linear(dim // 3, num_tokens),
                                   nn.LogSoftmax(dim=-1))
        self.routing = routing if routing is not None else RoutingControl()

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], token: nn.Embedding) -> torch.Tensor:
        b, n, c = x.shape
        h, w = x_size
        full_embedding = self.embeddingB.weight @ token.weight  # (num_tokens, d_state)
        policy, route_index = self.routing.route(self.route(x))
        prompt = torch.matmul(policy, full_embedding).view(b, n, self.d_state)
        order = self.routing.order(route_index.detach())
        if self.routing.record is not None:
            self.routing.record.append({"route_index": route_index.detach().clone(),
                                        "sort_indices": order.detach().clone()})
        x = self.in_proj(x.permute(0, 2, 1).reshape(b, c, h, w))
        x = x * torch.sigmoid(self.CPE(x))
        x = x.flatten(2).permute(0, 2, 1)
        y = self.selectiveScan(gather_tokens(x, order), prompt)
        y = self.out_proj(self.out_norm(y))
        return gather_tokens(y, inverse_permutation(order))


class AttentiveLayer(nn.Module):
    """Window attention + FFN, then ASSM + FFN, each half with a learned layer-scaled skip."""

    def __init__(self, dim: int, d_state: int, num_heads: int, window_size: int, shift_size: int,
                 inner_rank: int, num_tokens: int, convffn_kernel_size: int, mlp_ratio: float,
                 qkv_bias: bool, norm_layer: type[nn.Module], ffn: str, routing: RoutingControl) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = norm_layer(dim)
        self.norm2 = norm_layer(dim)
        self.norm3 = norm_layer(dim)
        self.norm4 = norm_layer(dim)
        self.scale1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.scale2 = nn.Parameter(1e-4 * torch.ones(dim))
        self.wqkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.win_mhsa = WindowAttention(dim, _pair(window_size), num_heads)
        self.assm = ASSM(dim, d_state, num_tokens=num_tokens, inner_rank=inner_rank, mlp_ratio=mlp_ratio,
                         routing=routing)
        hidden = int(dim * mlp_ratio)
        if ffn == "gated":
            self.convffn1: nn.Module = GatedMLP(dim, hidden)
            self.convffn2: nn.Module = GatedMLP(dim, hidden)
        else:
            self.convffn1 = ConvFFN(dim, hidden, convffn_kernel_size)
            self.convffn2 = ConvFFN(dim, hidden, convffn_kernel_size)
        self.embeddingA = nn.Embedding(inner_rank, d_state)
        nn.init.uniform_(self.embeddingA.weight, -1 / inner_rank, 1 / inner_rank)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], params: dict[str, torch.Tensor]) -> torch.Tensor:
        h, w = x_size
        b, n, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        qkv = self.wqkv(self.norm1(x)).reshape(b, h, w, 3 * c)
        mask = None
        if s > 0:
            qkv = torch.roll(qkv, shifts=(-s, -s), dims=(1, 2))
            mask = params["attn_mask"]
        windows = window_partition(qkv, ws).view(-1, ws * ws, 3 * c)
        attn = self.win_mhsa(windows, rpi=params["rpi_sa"], mask=mask).view(-1, ws, ws, c)
        attn_x = window_reverse(attn, ws, h, w)
        if s > 0:
            attn_x = torch.roll(attn_x, shifts=(s, s), dims=(1, 2))
        x_win = attn_x.reshape(b, n, c) + shortcut
        x_win = self.convffn1(self.norm2(x_win), x_size) + x_win
        x = shortcut * self.scale1 + x_win

        shortcut = x
        x_aca = self.assm(self.norm3(x), x_size, self.embeddingA) + x
        x = x_aca + self.convffn2(self.norm4(x_aca), x_size)
        return shortcut * self.scale2 + x


class BasicBlock(nn.Module):
    def __init__(self, depth: int, window_size: int, **layer_kwargs) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            AttentiveLayer(window_size=window_size, shift_size=0 if i % 2 == 0 else window_size // 2,
                           **layer_kwargs)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], params: dict[str, torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, x_size, params)
        return x


class ASSB(nn.Module):
    """Attentive state-space group: attentive layers, a conv, and a skip."""

    def __init__(self, dim: int, resi_connection: str, depth: int, window_size: int, use_checkpoint: bool,
                 **layer_kwargs) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.residual_group = BasicBlock(depth, window_size, dim=dim, **layer_kwargs)
        self.conv = _conv_block(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], params: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.use_checkpoint and self.training:
            body = torch.utils.checkpoint.checkpoint(self.residual_group, x, x_size, params, use_reentrant=False)
        else:
            body = self.residual_group(x, x_size, params)
        return _tokens(self.conv(_image(body, x_size))) + x


class _MambaIRv2Base(ReconstructionHead, nn.Module):
    """Shared body of MambaIRv2 and MambaIRv2Light (they differ in the feed-forward only)."""

    _ffn = "convffn"

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 48,
        d_state: int = 8,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (4, 4, 4, 4),
        window_size: int = 16,
        inner_rank: int = 32,
        num_tokens: int = 64,
        convffn_kernel_size: int = 5,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        routing: str = "gumbel",
        routing_seed: int | None = None,
        stable_sort: bool = True,
    ) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError(f"{type(self).__name__}: only patch_size=1 is used by the official models")
        if len(depths) != len(num_heads):
            raise ValueError(f"{type(self).__name__}: depths {list(depths)} and num_heads {list(num_heads)} "
                             "differ in length")
        num_feat = 64
        self.img_range = img_range
        self.mean = (torch.tensor(DIV2K_RGB_MEAN, device="cpu").view(1, 3, 1, 1) if in_chans == 3
                     else torch.zeros(1, 1, 1, 1, device="cpu"))
        self.upscale = upscale
        self.upsampler = upsampler
        self.window_size = window_size
        self.routing_control = RoutingControl(stable_sort=stable_sort)
        self.set_routing(routing, seed=routing_seed)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.ape = ape
        self.patch_norm = patch_norm
        self.patch_embed = nn.Module()
        if patch_norm:
            self.patch_embed.norm = norm_layer(embed_dim)
        resolution = _pair(img_size)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size, window_size))
        self.layers = nn.ModuleList([
            ASSB(dim=embed_dim, resi_connection=resi_connection, depth=depths[i], window_size=window_size,
                 use_checkpoint=use_checkpoint, d_state=d_state, num_heads=num_heads[i], inner_rank=inner_rank,
                 num_tokens=num_tokens, convffn_kernel_size=convffn_kernel_size, mlp_ratio=mlp_ratio,
                 qkv_bias=qkv_bias, norm_layer=norm_layer, ffn=self._ffn, routing=self.routing_control)
            for i in range(len(depths))
        ])
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = _conv_block(embed_dim, resi_connection)

        self._build_reconstruction(upsampler, embed_dim, num_feat, upscale, in_chans)
        self.apply(self._init_weights)


    # ---- routing control -------------------------------------------------------------------
    @property
    def routing(self) -> str:
        return self.routing_control.mode

    @routing.setter
    def routing(self, mode: str) -> None:
        self.set_routing(mode)

    def set_routing(self, mode: str, seed: int | None = None, generator: torch.Generator | None = None,
                    stable_sort: bool | None = None) -> None:
        """Routing mode for every ASSM: "gumbel" (official, global RNG), "gumbel_seeded" (a private
        generator from `generator` or `seed`), "argmax" (deterministic)."""
        if mode == "gumbel_seeded" and generator is None:
            if seed is None:
                raise ValueError("routing 'gumbel_seeded' needs seed= or generator=")
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.routing_control.set(mode, generator)
        if stable_sort is not None:
            self.routing_control.stable_sort = stable_sort

    @contextlib.contextmanager
    def injected_routing(self, noise: torch.Tensor | Sequence[torch.Tensor] | None = None,
                         sort_indices: torch.Tensor | Sequence[torch.Tensor] | None = None) -> Iterator[None]:
        """Replay routing: `noise[k]` (B, H*W, num_tokens) is added to the route logits of the k-th
        ASSM call, `sort_indices[k]` (B, H*W) replaces its token order (calls are counted in
        forward order: group-major, layer-minor)."""
        ctl = self.routing_control
        ctl.noise_queue = list(noise) if noise is not None else None
        ctl.sort_queue = list(sort_indices) if sort_indices is not None else None
        try:
            yield
        finally:
            ctl.noise_queue = None
            ctl.sort_queue = None

    @contextlib.contextmanager
    def recording_routing(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Yields a list that receives {"route_index", "sort_indices"} per ASSM call."""
        record: list[dict[str, torch.Tensor]] = []
        self.routing_control.record = record
        try:
            yield record
        finally:
            self.routing_control.record = None

    # ---- forward ---------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # The official model pads the raw input by appending flipped copies (edge repeated).
        x = pad_to_multiple(x, self.window_size, "symmetric")
        return (x - self.mean.to(x)) * self.img_range

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        params = {
            "attn_mask": shifted_window_mask(h, w, self.window_size, self.window_size // 2, x.device),
            "rpi_sa": self.relative_position_index_SA,
        }
        x = _tokens(x)
        if self.patch_norm:
            x = self.patch_embed.norm(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        for layer in self.layers:
            x = layer(x, (h, w), params)
        return _image(self.norm(x), (h, w))

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv_first(x)
        return self.conv_after_body(self.forward_features(first)) + first

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """conv_after_body(forward_features(f0)) + f0, f0 = conv_first(padded, normalised x), at the
        padded size (the up-sampler's input for `pixelshuffledirect`)."""
        return self._body(self._prepare(x))



class MambaIRv2(_MambaIRv2Base):
    """MambaIRv2 with ConvFFN (kernel `convffn_kernel_size`)."""

    _ffn = "convffn"


class MambaIRv2Light(_MambaIRv2Base):
    """MambaIRv2Light with GatedMLP; `convffn_kernel_size` is accepted and unused (as officially)."""

    _ffn = "gated"
