"""Rotary embedding on CUDA through the project's own Triton kernel: one read and one write of x.

Why not fla-core's `rotary_embedding` (used before): on the H200 at N = 32768 with 16 heads of 128 it
took 0.32 ms per call (forward or backward) for 134 MB of bf16 in and out, about five times the copy
time (benchmarks/results/mixer-parts-h200.md). Here each program rotates a block of positions for a
block of heads, loading that block's cos/sin once for all of its heads.

The tables are the reference's own (`rotary_tables`, float32, formed by PyTorch at the given positions),
so the angles are bit-identical to the reference's and only the rounding of x·cos ± x·sin to x's dtype
differs; computing sin/cos inside the kernel would need a range reduction of angles up to the
context length (65536 rad) that the fast GPU sin/cos do not make. The backward rotates the gradient
by the opposite angle (the rotation is orthogonal), with the same kernel.
"""

from __future__ import annotations

import contextlib

import torch

from oryx.ops.rotary.naive import naive_rotary, rotary_tables

BLOCK_T = 16     # positions per program
BLOCK_H = 4      # heads per program (the cos/sin block is loaded once for them)


def _kernel():
    """The Triton kernel, defined on first use (Triton is only imported where a kernel runs)."""
    import triton
    import triton.language as tl

    @triton.jit
    def rotate(X, Y, COS, SIN, T, H, sxb, sxt, sxh, syb, syt, syh, sct, sign,
               HALF: tl.constexpr, HALF_P2: tl.constexpr, BT: tl.constexpr, BH: tl.constexpr):
        # program (t block, h block, row b): y[b, t, h, :] = rotate(x[b, t, h, :], angle(b, t))
        pid_t, pid_h, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
        t = pid_t * BT + tl.arange(0, BT)
        h = pid_h * BH + tl.arange(0, BH)
        i = tl.arange(0, HALF_P2)
        t_ok, i_ok = t < T, i < HALF
        # tables: row b of [B, T, HALF] (sct = T * HALF) or the shared [T, HALF] (sct = 0)
        tab = b * sct + t[:, None] * HALF + i[None, :]
        tab_ok = t_ok[:, None] & i_ok[None, :]
        cos = tl.load(COS + tab, mask=tab_ok, other=0.0)[:, None, :]
        sin = tl.load(SIN + tab, mask=tab_ok, other=0.0)[:, None, :] * sign
        ok = tab_ok[:, None, :] & (h < H)[None, :, None]
        xo = b * sxb + t[:, None, None] * sxt + h[None, :, None] * sxh + i[None, None, :]
        yo = b * syb + t[:, None, None] * syt + h[None, :, None] * syh + i[None, None, :]
        x1 = tl.load(X + xo, mask=ok, other=0.0).to(tl.float32)
        x2 = tl.load(X + xo + HALF, mask=ok, other=0.0).to(tl.float32)
        tl.store(Y + yo, (x1 * cos - x2 * sin).to(Y.dtype.element_ty), mask=ok)
        tl.store(Y + yo + HALF, (x2 * cos + x1 * sin).to(Y.dtype.element_ty), mask=ok)

    return rotate


_KERNEL = None


def _launch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    """x [B, T, H, D] (unit stride along D), cos/sin float32 [B, T, D/2] or [T, D/2] -> rotated [B, T, H, D]."""
    import triton

    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _kernel()
    B, T, H, D = x.shape
    y = torch.empty(B, T, H, D, device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(T, BLOCK_T), triton.cdiv(H, BLOCK_H), B)
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():  # launch on x's GPU
        _KERNEL[grid](
            x, y, cos, sin, T, H, x.stride(0), x.stride(1), x.stride(2), y.stride(0), y.stride(1), y.stride(2),
            T * (D // 2) if cos.dim() == 3 else 0, sign,
            HALF=D // 2, HALF_P2=triton.next_power_of_2(D // 2), BT=BLOCK_T, BH=BLOCK_H,
        )
    return y


class _Rotary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _launch(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, dy):
        cos, sin = ctx.saved_tensors
        dy = dy if dy.stride(-1) == 1 else dy.contiguous()
        return _launch(dy, cos, sin, -1.0), None, None


def triton_rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Same contract as `naive_rotary`: x [B, T, H, D]; positions [T] or [B, T] -> [B, T, H, D].

    Rows of 2^31 elements or more (offsets within a row are int32 in the kernel) and more than 65535 rows
    (the grid's row axis) go to the reference instead."""
    x = x if x.stride(-1) == 1 else x.contiguous()
    B, T, H, D = x.shape
    if max(T * H * D, (T - 1) * x.stride(1) + (H - 1) * x.stride(2) + D) >= 2**31 or B > 65535:
        return naive_rotary(x, positions, theta)
    cos, sin = (t.contiguous() for t in rotary_tables(positions, x.shape[-1], theta, torch.float32))
    return _Rotary.apply(x, cos, sin)


def load():
    """`triton_rotary` where a CUDA device and Triton are present, else None."""
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        return None
    return triton_rotary
