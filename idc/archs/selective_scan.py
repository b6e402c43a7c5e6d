"""Selective scan (the S6 recurrence of Mamba) in pure PyTorch, vectorised, plus a CUDA dispatch.

Semantics (those of mamba_ssm's `selective_scan_ref`), per batch b, channel d, state n, step t:

    delta = softplus(delta + delta_bias)          (each optional)
    x_t   = exp(delta_t * A[d, n]) * x_{t-1} + delta_t * B[.., n, t] * u_t      (x_{-1} = 0)
    y_t   = sum_n C[.., n, t] * x_t[n] + D[d] * u_t ;  out = y * silu(z)        (D, z optional)

Shapes: u, delta (B, D, L); A (D, N) real; B, C (B, N, L) or (B, G, N, L) with G dividing D
(channel d uses group d // (D / G)), or (D, N) when not input-dependent; D (D,); z (B, D, L);
delta_bias (D,). Computation is in float32 (float64 when u is float64, which lets tests compare
implementations far below float32 rounding); the output has u's dtype.

`selective_scan` uses mamba_ssm's CUDA kernel when its compiled extension is present and the
tensors are on CUDA (`MAMBA_INSTALL`; see `_find_cuda_kernel` for the package layouts),
otherwise `selective_scan_vectorised`.
`selective_scan_sequential` is a step-by-step loop kept as the reference for tests and benchmarks.

The vectorised form solves the linear recurrence x_t = a_t x_{t-1} + b_t with a_t = exp(delta A)
in [0, 1] (A < 0, delta >= 0) by a parallel odd-even (Blelloch-style) scan: log2(L) levels of
whole-tensor operations, O(L) work, no Python loop over the sequence. It only multiplies by
factors in [0, 1] and never exponentiates positive sums (unlike cumulative-sum-in-log-space
forms), so it is as stable as the sequential loop. Its backward is the same scan run in reverse
time (a custom autograd function): no graph of the levels is kept, memory stays at a few
(B, D, N, L) tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

# The install line that keeps the compiled extension: built against the torch already installed
# (build isolation would build against another torch; MAMBA_SKIP_CUDA_BUILD=TRUE drops the kernel),
# and with the CUDA build asked for (mamba-ssm's main branch makes it opt-in: MAMBA_KEEP_CUDA_BUILD).
MAMBA_INSTALL = "MAMBA_KEEP_CUDA_BUILD=TRUE pip install --no-build-isolation mamba-ssm"

_CUDA_KERNEL: Callable | None = None
_CUDA_KERNEL_TRIED = False
_CUDA_KERNEL_MISSING: str | None = None


def _find_cuda_kernel() -> tuple[Callable | None, str | None]:
    """(selective_scan_fn, None) when mamba_ssm's compiled kernel is usable, else (None, why).

    The compiled extension (the top-level module ``selective_scan_cuda`` of a mamba-ssm build) is
    checked itself: older mamba-ssm imported it in ``selective_scan_interface`` and failed at
    import time without it, recent releases make it optional there, so the interface imports and
    ``selective_scan_fn`` fails only when called. Importing the interface proves nothing.
    """
    try:
        import selective_scan_cuda  # noqa: F401 - the compiled kernel, not a Python module
    except Exception as err:  # ImportError, OSError (missing libcudart), RuntimeError (ABI)
        try:
            import mamba_ssm  # noqa: F401
        except Exception:
            return None, "mamba_ssm is not installed"
        return None, f"mamba_ssm is installed without its compiled extension selective_scan_cuda ({err})"
    if not callable(getattr(selective_scan_cuda, "fwd", None)):
        return None, "selective_scan_cuda has no fwd kernel (not mamba-ssm's extension?)"
    try:
        from mamba_ssm.ops import selective_scan_interface as interface
    except Exception as err:
        return None, f"mamba_ssm.ops.selective_scan_interface does not import ({err})"
    if getattr(interface, "selective_scan_cuda", selective_scan_cuda) is None:
        return None, "mamba_ssm's interface did not bind the compiled extension"
    return interface.selective_scan_fn, None


def cuda_kernel() -> Callable | None:
    """mamba_ssm's `selective_scan_fn` where its compiled kernel is present, else None (then
    one log line says why, and the PyTorch scan is used)."""
    global _CUDA_KERNEL, _CUDA_KERNEL_TRIED, _CUDA_KERNEL_MISSING
    if not _CUDA_KERNEL_TRIED:
        _CUDA_KERNEL_TRIED = True
        _CUDA_KERNEL, _CUDA_KERNEL_MISSING = _find_cuda_kernel()
        if _CUDA_KERNEL is None:
            logger.info("selective scan: %s; using the PyTorch scan (for the CUDA kernel: %s)",
                        _CUDA_KERNEL_MISSING, MAMBA_INSTALL)
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
def _parallel_scan(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """x_t = a_t x_{t-1} + b_t along the last axis (x_{-1} = 0), without autograd history; with
    `reverse`, x_t = a_t x_{t+1} + b_t (x_L = 0).

    Odd-even (Blelloch-style) reduction: composing neighbouring steps pairwise halves the
    sequence, its scan gives the states at every second position, and one more step from those
    gives the others. log2(L) levels, O(L) work in total, each level a few whole-tensor operations.
    """
    length = a.shape[-1]
    if length == 1:
        return b.clone()
    if length % 2:  # an identity step (a = 1, b = 0) at the end changes no other state
        a = F.pad(a, (0, 1), value=1.0)
        b = F.pad(b, (0, 1), value=0.0)
    a_pairs, b_pairs = a.unflatten(-1, (-1, 2)), b.unflatten(-1, (-1, 2))
    a_even, a_odd = a_pairs[..., 0], a_pairs[..., 1]
    b_even, b_odd = b_pairs[..., 0], b_pairs[..., 1]
    out = torch.empty_like(b_pairs)
    x_even, x_odd = out[..., 0], out[..., 1]
    if not reverse:
        # Odd states from the pair compositions; then x_0 = b_0, x_2i = a_2i x_(2i-1) + b_2i.
        x_odd.copy_(_parallel_scan(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even)))
        x_even.copy_(b_even)
        x_even[..., 1:].addcmul_(a_even[..., 1:], x_odd[..., :-1])
    else:
        # Even states from the pair compositions; then x_(2i+1) = a_(2i+1) x_(2i+2) + b_(2i+1).
        x_even.copy_(_parallel_scan(a_even * a_odd, torch.addcmul(b_even, a_even, b_odd), reverse=True))
        x_odd.copy_(b_odd)
        x_odd[..., :-1].addcmul_(a_odd[..., :-1], x_even[..., 1:])
    return out.flatten(-2)[..., :length]


class _LinearRecurrence(torch.autograd.Function):
    """x = scan(a, b): x_t = a_t x_{t-1} + b_t, with the backward as a reverse-time scan.

    dL/db_t = g_t with g_t = dL/dx_t + a_{t+1} g_{t+1};  dL/da_t = g_t x_{t-1}.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = _parallel_scan(a, b)
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor):
        a, x = ctx.saved_tensors
        a_next = torch.empty_like(a)  # a_{t+1}; nothing flows back past the last step
        a_next[..., :-1] = a[..., 1:]
        a_next[..., -1] = 0.0
        g = _parallel_scan(a_next, grad_x.contiguous(), reverse=True)
        grad_a = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.empty_like(g)
            grad_a[..., 0] = 0.0
            torch.mul(g[..., 1:], x[..., :-1], out=grad_a[..., 1:])
        return grad_a, g if ctx.needs_input_grad[1] else None


def linear_recurrence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_t = a_t x_{t-1} + b_t along the last axis with x_{-1} = 0; differentiable."""
    if a.shape != b.shape:
        raise ValueError(f"linear_recurrence: a {tuple(a.shape)} and b {tuple(b.shape)} differ")
    return _LinearRecurrence.apply(a, b)


def selective_scan_vectorised(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                              C: torch.Tensor, D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                              delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                              return_last_state: bool = False):
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
    states = linear_recurrence(decay, drive)  # (B, D, N, L)
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
            raise RuntimeError(f"selective_scan: impl='cuda' needs mamba_ssm's compiled kernel "
                               f"({_CUDA_KERNEL_MISSING}; install: {MAMBA_INSTALL})")
        _check_shapes(u, delta, A, B, C, D, z, delta_bias)
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if impl == "vectorised":
        return selective_scan_vectorised(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if impl == "sequential":
        return selective_scan_sequential(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    raise ValueError(f"selective_scan: impl must be auto, cuda, vectorised or sequential, got {impl!r}")
