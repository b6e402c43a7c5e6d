"""Selective scan (the S6 recurrence of Mamba) in pure PyTorch, vectorised, plus a CUDA dispatch.

Semantics (those of mamba_ssm's `selective_scan_ref`), per batch b, channel d, state n, step t:

    delta = softplus(delta + delta_bias)          (each optional)
    x_t   = exp(delta_t * A[d, n]) * x_{t-1} + delta_t * B[.., n, t] * u_t      (x_{-1} = 0)
    y_t   = sum_n C[.., n, t] * x_t[n] + D[d] * u_t ;  out = y * silu(z)        (D, z optional)

Shapes: u, delta (B, D, L); A (D, N) real; B, C (B, N, L) or (B, G, N, L) with G dividing D
(channel d uses group d // (D / G)), or (D, N) when not input-dependent; D (D,); z (B, D, L);
delta_bias (D,). Computation is in float32 (float64 when u is float64, which lets tests compare
implementations far below float32 rounding); the output has u's dtype.

`selective_scan` uses mamba_ssm's CUDA kernel when it is importable and the tensors are on CUDA
(`pip install mamba-ssm`, optional extra `mamba`), otherwise `selective_scan_vectorised`.
`selective_scan_sequential` is a step-by-step loop kept as the reference for tests and benchmarks.

The vectorised form solves the linear recurrence x_t = a_t x_{t-1} + b_t with a_t = exp(delta A)
in [0, 1] (A < 0, delta >= 0) by a chunked parallel scan: inside chunks of length T a
Hillis-Steele scan (log2 T steps over the whole tensor), between chunks a loop over L / T chunk
ends. It only multiplies by factors in [0, 1], never exponentiates positive sums, so it is as
stable as the sequential loop. Its backward is the same scan run in reverse (a custom autograd
function), which needs no graph of the log-steps and keeps memory at a few (B, D, N, L) tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

# Chunk length of the parallel scan: log2(T) full-tensor steps plus L/T small carry steps.
DEFAULT_CHUNK = 32

_CUDA_KERNEL: Callable | None = None
_CUDA_KERNEL_TRIED = False


def cuda_kernel() -> Callable | None:
    """mamba_ssm's `selective_scan_fn`, or None where mamba_ssm (a CUDA-only build) is missing."""
    global _CUDA_KERNEL, _CUDA_KERNEL_TRIED
    if not _CUDA_KERNEL_TRIED:
        _CUDA_KERNEL_TRIED = True
        try:
            # The module loads the compiled extension at import time: it fails on CPU-only machines.
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception as err:  # ImportError, OSError (missing libcudart), RuntimeError
            logger.debug("mamba_ssm CUDA selective scan unavailable: %s", err)
        else:
            _CUDA_KERNEL = selective_scan_fn
    return _CUDA_KERNEL


def _check_shapes(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                  C: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None,
                  delta_bias: torch.Tensor | None) -> None:
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"selective_scan: u and delta must both be (B, D, L), got {tuple(u.shape)} "
                         f"and {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (D={dim}, N), got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported")
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.dim() == 2:
            ok = m.shape == (dim, n)
        elif m.dim() == 3:
            ok = m.shape == (batch, n, length)
        elif m.dim() == 4:
            ok = m.shape[0] == batch and m.shape[2:] == (n, length) and dim % m.shape[1] == 0
        else:
            ok = False
        if not ok:
            raise ValueError(f"selective_scan: {name} must be (D, N), (B, N, L) or (B, G, N, L) with "
                             f"B={batch}, N={n}, L={length}, G | D={dim}; got {tuple(m.shape)}")
    if D is not None and D.shape != (dim,):
        raise ValueError(f"selective_scan: D must be ({dim},), got {tuple(D.shape)}")
    if delta_bias is not None and delta_bias.shape != (dim,):
        raise ValueError(f"selective_scan: delta_bias must be ({dim},), got {tuple(delta_bias.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"selective_scan: z must be {tuple(u.shape)}, got {tuple(z.shape)}")


def _work_dtype(u: torch.Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _prepare_delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool,
                   dtype: torch.dtype) -> torch.Tensor:
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _per_channel(m: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """B or C (2 or 3 dims) as a tensor broadcastable against (B, D, N, L)."""
    if m.dim() == 2:  # (D, N): same for every step
        return m.to(dtype)[None, :, :, None]
    return m.to(dtype)[:, None]  # (B, N, L): shared by all channels


def _finish(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None,
            dtype: torch.dtype) -> torch.Tensor:
    out = y if D is None else y + u * D.to(y.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(y.dtype))
    return out.to(dtype)


# --------------------------------------------------------------------------------------------
# Sequential reference
# --------------------------------------------------------------------------------------------
def selective_scan_sequential(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                              C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                              delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                              return_last_state: bool = False):
    """Step-by-step loop over L (reference for tests and benchmarks; slow)."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype_in, work = u.dtype, _work_dtype(u)
    u = u.to(work)
    delta = _prepare_delta(delta, delta_bias, delta_softplus, work)
    batch, dim, length = u.shape
    n = A.shape[1]
    A = A.to(work)

    def at(m: torch.Tensor, t: int) -> torch.Tensor:  # (B or 1, D, N) for step t
        if m.dim() == 2:
            return m.to(work)[None]
        if m.dim() == 3:
            return m[:, :, t].to(work)[:, None, :]
        g = m.shape[1]
        return m[:, :, :, t].to(work).repeat_interleave(dim // g, dim=1)

    x = u.new_zeros(batch, dim, n)
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]
        x = torch.exp(dt * A) * x + dt * at(B, t) * u[:, :, t, None]
        ys.append((x * at(C, t)).sum(-1))
    out = _finish(torch.stack(ys, dim=2), u, D, z, dtype_in)
    return (out, x) if return_last_state else out


# --------------------------------------------------------------------------------------------
# Vectorised linear recurrence
# --------------------------------------------------------------------------------------------
def _chunked_scan(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """x_t = a_t x_{t-1} + b_t along the last axis (x_{-1} = 0), without autograd history."""
    length = a.shape[-1]
    t = min(chunk, length)
    pad = (-length) % t
    if pad:  # identity steps at the end (a = 1, b = 0) do not change earlier states
        a = F.pad(a, (0, pad), value=1.0)
        b = F.pad(b, (0, pad), value=0.0)
    lead = a.shape[:-1]
    nc = a.shape[-1] // t
    a = a.reshape(*lead, nc, t)
    b = b.reshape(*lead, nc, t)
    # Hillis-Steele inclusive scan inside each chunk: after the step with offset k, position i
    # holds the composition of steps i-2k+1..i; (a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2).
    k = 1
    while k < t:
        b = torch.cat([b[..., :k], torch.addcmul(b[..., k:], a[..., k:], b[..., :-k])], dim=-1)
        a = torch.cat([a[..., :k], a[..., k:] * a[..., :-k]], dim=-1)
        k *= 2
    if nc > 1:
        # Carry the state at the end of each chunk into the next: a short loop over chunks.
        a_end, b_end = a[..., -1], b[..., -1]  # (..., nc)
        carries = [torch.zeros_like(b_end[..., 0])]
        for c in range(nc - 1):
            carries.append(torch.addcmul(b_end[..., c], a_end[..., c], carries[-1]))
        carry = torch.stack(carries, dim=-1)  # state entering each chunk
        b = torch.addcmul(b, a, carry[..., None])
    return b.reshape(*lead, nc * t)[..., :length]


class _LinearRecurrence(torch.autograd.Function):
    """x = scan(a, b): x_t = a_t x_{t-1} + b_t, with the backward as a reverse scan.

    dL/db_t = g_t with g_t = dL/dx_t + a_{t+1} g_{t+1};  dL/da_t = g_t x_{t-1}.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
        x = _chunked_scan(a, b, chunk)
        ctx.save_for_backward(a, x)
        ctx.chunk = chunk
        return x

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor):
        a, x = ctx.saved_tensors
        # Reverse-time recurrence: coefficients a_{t+1} (zero after the last step).
        a_next = torch.cat([a[..., 1:], torch.zeros_like(a[..., :1])], dim=-1)
        g = _chunked_scan(a_next.flip(-1), grad_x.flip(-1), ctx.chunk).flip(-1)
        grad_a = None
        if ctx.needs_input_grad[0]:
            x_prev = torch.cat([torch.zeros_like(x[..., :1]), x[..., :-1]], dim=-1)
            grad_a = g * x_prev
        return grad_a, g if ctx.needs_input_grad[1] else None, None


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """x_t = a_t x_{t-1} + b_t along the last axis with x_{-1} = 0; differentiable."""
    if a.shape != b.shape:
        raise ValueError(f"linear_recurrence: a {tuple(a.shape)} and b {tuple(b.shape)} differ")
    if chunk < 1:
        raise ValueError(f"linear_recurrence: chunk must be >= 1, got {chunk}")
    return _LinearRecurrence.apply(a, b, chunk)


def selective_scan_vectorised(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                              C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                              delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                              return_last_state: bool = False, chunk: int = DEFAULT_CHUNK):
    """Pure-PyTorch selective scan without a Python loop over the sequence (see module doc)."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype_in, work = u.dtype, _work_dtype(u)
    u = u.to(work)
    delta = _prepare_delta(delta, delta_bias, delta_softplus, work)
    batch, dim, length = u.shape
    n = A.shape[1]
    decay = torch.exp(delta[:, :, None, :] * A.to(work)[None, :, :, None])  # (B, D, N, L), in (0, 1]
    du = delta * u  # (B, D, L)
    if B.dim() == 4:  # groups broadcast over their channels, never copied
        g = B.shape[1]
        drive = (du.view(batch, g, dim // g, 1, length) * B.to(work)[:, :, None]).reshape(batch, dim, n, length)
    else:
        drive = du[:, :, None, :] * _per_channel(B, work)
    states = linear_recurrence(decay, drive, chunk)  # (B, D, N, L)
    if C.dim() == 4:
        g = C.shape[1]
        y = (states.view(batch, g, dim // g, n, length) * C.to(work)[:, :, None]).sum(3).reshape(batch, dim, length)
    else:
        y = (states * _per_channel(C, work)).sum(2)
    out = _finish(y, u, D, z, dtype_in)
    return (out, states[..., -1]) if return_last_state else out


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                   delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                   return_last_state: bool = False, impl: str = "auto"):
    """Selective scan; `impl` is "auto" (CUDA kernel where possible, else vectorised),
    "cuda", "vectorised" or "sequential"."""
    if impl == "auto":
        impl = "cuda" if u.is_cuda and cuda_kernel() is not None else "vectorised"
    if impl == "cuda":
        kernel = cuda_kernel()
        if kernel is None:
            raise RuntimeError("selective_scan: impl='cuda' needs mamba_ssm (pip install mamba-ssm) and CUDA")
        _check_shapes(u, delta, A, B, C, D, z, delta_bias)
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if impl == "vectorised":
        return selective_scan_vectorised(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if impl == "sequential":
        return selective_scan_sequential(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    raise ValueError(f"selective_scan: impl must be auto, cuda, vectorised or sequential, got {impl!r}")
