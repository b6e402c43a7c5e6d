"""Window self-attention with a relative-position bias, shared by SwinIR and MambaIRv2.

Two numerically equivalent paths (equal up to float rounding, ~1e-6 in float32):

* the explicit one of the official code: `softmax(q k^T * scale + bias + mask) v`, which keeps the
  (windows, heads, n, n) score tensor and its softmax alive for the backward pass;
* the fused one, `F.scaled_dot_product_attention` with bias + shift mask as an additive
  `attn_mask`: on CUDA the memory-efficient kernel (it supports an additive bias and its gradient),
  on the CPU PyTorch's fused CPU kernel or its math fallback.

Which one a module uses is its `fused_attention` attribute (default: explicit, the official
arithmetic); `set_fused_attention(model, True)` switches every window attention in a model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                     mask: torch.Tensor | None, scale: float, fused: bool = False,
                     dropout: nn.Dropout | None = None) -> torch.Tensor:
    """Attention inside windows.

    q, k, v: (B*nW, heads, n, d), windows of one image consecutive (the order of window_partition).
    bias: (heads, n, n) relative-position bias. mask: (nW, n, n) additive shift mask, or None.
    dropout: applied to the attention weights (in training mode only). Returns (B*nW, heads, n, d).
    """
    bw, heads, n, _ = q.shape
    dropout_p = dropout.p if dropout is not None and dropout.training else 0.0
    if fused:
        if mask is None:
            attn_mask = bias.unsqueeze(0).expand(bw, heads, n, n)
        else:
            nw = mask.shape[0]
            per_window = bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, heads, n, n)
            attn_mask = per_window.unsqueeze(0).expand(bw // nw, nw, heads, n, n).reshape(bw, heads, n, n)
        # The kernels want the mask in q's dtype (autocast may have made q bf16/fp16).
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype), dropout_p=dropout_p,
                                              scale=scale)
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(bw // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, n, n)
    attn = attn.softmax(dim=-1)
    return (dropout(attn) if dropout_p > 0 else attn) @ v


def relative_bias(table: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """(heads, n, n) bias gathered from a ((2wh-1)(2ww-1), heads) table by an (n, n) index."""
    return table[index.reshape(-1)].view(n, n, -1).permute(2, 0, 1)


def set_fused_attention(model: nn.Module, enabled: bool = True) -> int:
    """Switch every window attention of `model` to the fused (or explicit) path; returns how many."""
    count = 0
    for module in model.modules():
        if hasattr(module, "fused_attention"):
            module.fused_attention = bool(enabled)
            count += 1
    return count
