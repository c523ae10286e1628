"""Attention for the attention-mode positions only.

`sparse_attention` takes every position's query and a mode mask, and computes attention only where the
mask is True: all positions -> full causal attention; some -> their queries are packed (gathered) with
their original positions and attend causally by position, so the cost scales with their number.
"""

from __future__ import annotations

from functools import cache

import torch

from oryx.ops.attention import cuda
from oryx.ops.attention.gather import Packing
from oryx.ops.attention.naive import naive_attention
from oryx.ops.attention.sdpa import causal_attention, positioned_attention
from oryx.ops.backend import pick


def _full_or_gathered(full, positioned):
    """An implementation: `full(q, k, v, scale)` when every position of a whole sequence is in
    attention mode, else the attention-mode queries packed through `positioned(q, k, v, q_pos, scale)`."""

    def run(q, k, v, mask, offset, scale):
        T = mask.shape[1]
        if offset == 0 and k.shape[1] == T and bool(mask.all()):
            return full(q, k, v, scale)
        return _gathered(positioned, q, k, v, mask, offset, scale)

    return run


_torch = _full_or_gathered(causal_attention, positioned_attention)


@cache
def _load_triton():
    """CUDA kernels (cuda.py): fused SDPA for full attention, FlexAttention for packed queries."""
    return _full_or_gathered(cuda.full_causal_attention, cuda.packed_attention) if cuda.available() else None


def _naive(q, k, v, mask, offset, scale):
    return _gathered(naive_attention, q, k, v, mask, offset, scale)


def _gathered(attend, q, k, v, mask, offset, scale):
    packing = Packing.from_mask(mask)
    if packing.index.shape[1] == 0:                                  # no attention-mode position
        return q.new_zeros(*q.shape[:3], v.shape[-1])
    q_pos = packing.index + offset                                   # absolute positions [B, n]
    o = attend(packing.gather(q), k, v, q_pos, scale)               # [B, n, H, V]
    return packing.scatter(o)


IMPLEMENTATIONS = {"naive": _naive, "torch": _torch, "triton": _load_triton}


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    offset: int = 0,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention at the positions where `mask` is True; zeros elsewhere.

    Args:
        q: [B, T, H, K] queries of the T positions of this call, at absolute positions offset..offset+T-1.
        k: [B, S, H, K], v: [B, S, H, V]: all keys and values so far (S = offset + T).
        mask: [B, T] bool, True where a position runs in attention mode.
    Returns:
        o: [B, T, H, V].
    """
    B, T, H, K = q.shape
    if k.shape[1] != offset + T or k.shape[0] != B or k.shape[2:] != (H, K) or v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"keys/values must cover offset + T = {offset + T} positions with q's heads: "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if mask.shape != (B, T) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor [B, T] = [{B}, {T}], got {mask.dtype} {tuple(mask.shape)}")
    scale = K**-0.5 if scale is None else scale
    fn = pick("attention", IMPLEMENTATIONS, backend, q.device)
    return fn(q, k, v, mask, offset, scale)


__all__ = ["Packing", "causal_attention", "naive_attention", "positioned_attention", "sparse_attention"]
