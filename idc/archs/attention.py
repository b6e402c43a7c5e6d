"""Window self-attention with a relative-position bias, shared by SwinIR and MambaIRv2.

Two numerically equivalent paths (equal up to float rounding, ~1e-6 in float32):

* the explicit one of the official code: `softmax(q k^T * scale + bias + mask) v`, which keeps the
  (windows, heads, n, n) score tensor and its softmax alive for the backward pass;
* the fused one, `F.scaled_dot_product_attention` with bias + shift mask as an additive
  `attn_mask`: on CUDA the memory-efficient kernel (it supports an additive bias and its gradient),
  on the CPU PyTorch's fused CPU kernel or its math fallback. The windows of an image are folded
  into the heads, so that the (windows, heads, n, n) bias + mask broadcasts over the images instead
  of being copied once per image (at 256 patches of 64x64 that copy was 1.6 GB per block, and the
  kernel kept it for the backward pass).

In both, bias and mask are summed once per call, in the scores' dtype: under bf16 autocast the
scores and their softmax stay bf16 (the official arithmetic promotes them to float32 by adding the float32
bias, then casts the softmax back to bf16 for the product with v: two extra passes over the largest
tensor of the block).

Per module, two attributes choose the path: `fused_attention` (default: explicit, the official
arithmetic) and `head_dim_multiple` (default 1: none): q, k and v are zero-padded to a multiple of
it in the head dimension (SwinIR-light's 10 -> 16 with 8), which leaves the result unchanged up to
float rounding (the scale is the unpadded one) and gives GPU kernels tensor-core-aligned operands.
`set_window_attention(model, fused=..., head_dim_multiple=...)` sets them for every window
attention of a model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                     mask: torch.Tensor | None, scale: float, fused: bool = False,
                     dropout: nn.Dropout | None = None, head_dim_multiple: int = 1) -> torch.Tensor:
    """Attention inside windows.

    q, k, v: (B*nW, heads, n, d), windows of one image consecutive (the order of window_partition).
    bias: (heads, n, n) relative-position bias. mask: (nW, n, n) additive shift mask, or None.
    dropout: applied to the attention weights (in training mode only). head_dim_multiple: q, k, v
    zero-padded to a multiple of it in d (1: not padded). Returns (B*nW, heads, n, d).
    """
    bw, heads, n, d = q.shape
    dropout_p = dropout.p if dropout is not None and dropout.training else 0.0
    # (nW or 1, heads, n, n), summed once, in the dtype of the scores (autocast's for float32 q).
    additive = (bias.unsqueeze(0) if mask is None else bias.unsqueeze(0) + mask.unsqueeze(1)).to(_scores_dtype(q))
    nw = additive.shape[0]
    pad = (-d) % head_dim_multiple
    if pad:
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    if fused:
        def by_image(t: torch.Tensor) -> torch.Tensor:  # (B*nW, heads, n, e) -> (B, nW*heads, n, e)
            return t.reshape(bw // nw, nw * heads, n, t.shape[-1])

        out = F.scaled_dot_product_attention(by_image(q), by_image(k), by_image(v),
                                             attn_mask=additive.reshape(1, nw * heads, n, n),
                                             dropout_p=dropout_p, scale=scale).view(bw, heads, n, -1)
    else:
        attn = (q * scale) @ k.transpose(-2, -1)
        attn = (attn.view(bw // nw, nw, heads, n, n) + additive).view(bw, heads, n, n)
        if torch.is_autocast_enabled(attn.device.type):
            # Autocast would compute the softmax in float32 and cast it back for `@ v`; in the
            # scores' own dtype the kernel still accumulates in float32.
            with torch.autocast(attn.device.type, enabled=False):
                attn = attn.softmax(dim=-1)
        else:
            attn = attn.softmax(dim=-1)
        out = (dropout(attn) if dropout_p > 0 else attn) @ v
    return out[..., :d] if pad else out


def _scores_dtype(q: torch.Tensor) -> torch.dtype:
    device = q.device.type
    if q.dtype == torch.float32 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return q.dtype


def relative_bias(table: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """(heads, n, n) bias gathered from a ((2wh-1)(2ww-1), heads) table by an (n, n) index."""
    return table[index.reshape(-1)].view(n, n, -1).permute(2, 0, 1)


def window_attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every module of `model` that computes window attention through `window_attention`."""
    return [m for m in model.modules() if hasattr(m, "fused_attention") and hasattr(m, "head_dim_multiple")]


def set_window_attention(model: nn.Module, *, fused: bool | None = None,
                         head_dim_multiple: int | None = None) -> int:
    """Set the attention path of every window attention of `model` (None: leave as is); returns
    how many modules were set."""
    if head_dim_multiple is not None and not (isinstance(head_dim_multiple, int) and head_dim_multiple >= 1):
        raise ValueError(f"head_dim_multiple must be a positive integer, got {head_dim_multiple!r}")
    modules = window_attention_modules(model)
    for module in modules:
        if fused is not None:
            module.fused_attention = bool(fused)
        if head_dim_multiple is not None:
            module.head_dim_multiple = int(head_dim_multiple)
    return len(modules)


def set_fused_attention(model: nn.Module, enabled: bool = True) -> int:
    """Switch every window attention of `model` to the fused (or explicit) path; returns how many."""
    return set_window_attention(model, fused=enabled)
