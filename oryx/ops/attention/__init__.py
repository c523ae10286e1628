"""Attention for the attention-mode positions only.

`sparse_attention` takes every position's query and a mode mask, and computes attention only where the
mask is True: all positions -> full causal attention; some -> their queries are packed (gathered) with
their original positions and attend causally by position, so the cost scales with their number. Query
rotation (RoPE) happens after packing, and so may the query projection (`project`: the layer's inputs
are packed and projected, so only attention-mode positions pay for it); the packed outputs are scattered
into the caller's tensor of other-mode outputs, so nothing but the attention kernel itself touches all T
positions per query.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import torch

from oryx.ops.attention import cuda
from oryx.ops.attention.gather import Packing
from oryx.ops.attention.naive import naive_attention
from oryx.ops.attention.sdpa import causal_attention, positioned_attention
from oryx.ops.backend import pick
from oryx.ops.rotary import rotary

Rotation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None   # (q, positions) -> rotated q
Projection = Callable[[torch.Tensor], torch.Tensor] | None               # inputs [..., d] -> queries [..., H*K]


def _queries(q: torch.Tensor, project: Projection, k: torch.Tensor) -> torch.Tensor:
    """q [B, L, H, K] as given, or inputs [B, L, d] projected through `project` -> [B, L, H, K] (H, K
    those of the keys k [B, S, H, K]; a projection of another width is an error)."""
    if project is None:
        return q
    out = project(q)
    if out.shape[-1] != k.shape[2] * k.shape[3]:
        raise ValueError(
            f"the query projection gives {out.shape[-1]} features per position; the keys' heads need "
            f"{k.shape[2]} x {k.shape[3]} = {k.shape[2] * k.shape[3]}"
        )
    return out.unflatten(-1, tuple(k.shape[2:]))


def _full_or_gathered(full, positioned, slots: Callable[[int], int] | None = None):
    """An implementation: `full(q, k, v, scale)` when every position of a whole sequence is in
    attention mode, else the attention-mode queries packed through `positioned(q, k, v, q_pos, scale)`,
    into `slots(most)` rows where the kernel prefers a size (padding rows are dropped after it)."""

    def run(q, k, v, mask, offset, scale, rotate: Rotation, fill, counts, project: Projection):
        T = mask.shape[1]
        if offset == 0 and k.shape[1] == T and counts[0] == T:
            q = _queries(q, project, k)
            if rotate is not None:
                q = rotate(q, torch.arange(T, device=q.device))
            return full(q, k, v, scale)
        return _gathered(positioned, q, k, v, mask, offset, scale, rotate, fill, counts, project, slots)

    return run


_torch = _full_or_gathered(causal_attention, positioned_attention)


@cache
def _load_triton():
    """CUDA kernels (cuda.py): fused SDPA for full attention, FlexAttention for packed queries."""
    if not cuda.available():
        return None
    return _full_or_gathered(cuda.full_causal_attention, cuda.packed_attention, cuda.packed_slots)


def _naive(q, k, v, mask, offset, scale, rotate: Rotation, fill, counts, project: Projection):
    return _gathered(naive_attention, q, k, v, mask, offset, scale, rotate, fill, counts, project)


def _gathered(attend, q, k, v, mask, offset, scale, rotate: Rotation, fill, counts, project: Projection, slots=None):
    if counts[1] == 0:                                               # no attention-mode position
        return v.new_zeros(*mask.shape, *v.shape[2:]) if fill is None else fill.clone()
    packing = Packing.from_mask(mask, counts[1], None if slots is None else slots(counts[1]))
    q_pos = packing.index + offset                                   # absolute positions [B, n]
    q = _queries(packing.gather(q), project, k)                      # projected after packing
    if rotate is not None:
        q = rotate(q, q_pos)
    o = attend(q, k, v, q_pos, scale)                                # [B, n, H, V]
    return packing.scatter(o, fill)


IMPLEMENTATIONS = {"naive": _naive, "torch": _torch, "triton": _load_triton}


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    offset: int = 0,
    scale: float | None = None,
    backend: str = "auto",
    rope_theta: float | None = None,
    fill: torch.Tensor | None = None,
    counts: tuple[int, int] | None = None,
    project: Projection = None,
) -> torch.Tensor:
    """Causal attention at the positions where `mask` is True; `fill` (or zeros) elsewhere.

    Args:
        q: [B, T, H, K] queries of the T positions of this call, at absolute positions offset..offset+T-1;
            with `project`, the inputs [B, T, d] they are formed from.
        k: [B, S, H, K], v: [B, S, H, V]: all keys and values so far (S = offset + T), keys already
            rotated when RoPE is used.
        mask: [B, T] bool, True where a position runs in attention mode.
        rope_theta: rotate the queries (RoPE, `oryx.ops.rotary`) at their positions, after packing.
        fill: [B, T, H, V], the outputs kept where mask is False (the other mode's).
        counts: (fewest, most) attention positions in a row, when the caller already has them on the
            host (`mode_counts(mask)[0]`); else read here from the device, once (a synchronisation).
        project: [..., d] -> [..., H*K], the query projection, applied to the attention-mode positions
            only (after packing) instead of to all T: a per-position map such as an `nn.Linear`.
    Returns:
        o: [B, T, H, V].
    """
    B, T = q.shape[:2]
    q_dims_ok = q.dim() == (3 if project is not None else 4) and k.dim() == 4 and v.dim() == 4
    if (
        not q_dims_ok or k.shape[1] != offset + T or k.shape[0] != B or v.shape[:3] != k.shape[:3]
        or (project is None and q.shape[2:] != k.shape[2:])
    ):
        raise ValueError(
            f"keys/values must cover offset + T = {offset + T} positions with q's heads: "
            f"q {tuple(q.shape)}{' (inputs to project)' if project is not None else ''}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if mask.shape != (B, T) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor [B, T] = [{B}, {T}], got {mask.dtype} {tuple(mask.shape)}")
    if fill is not None and fill.shape != (B, T, *v.shape[2:]):
        raise ValueError(f"fill must be [B, T, H, V] = {(B, T, *v.shape[2:])}, got {tuple(fill.shape)}")
    scale = k.shape[-1] ** -0.5 if scale is None else scale
    counts = mode_counts(mask)[0] if counts is None else check_counts(counts, T)
    rotate = None if rope_theta is None else partial(rotary, theta=rope_theta, backend=backend)
    fn = pick("attention", IMPLEMENTATIONS, backend, q.device)
    return fn(q, k, v, mask, offset, scale, rotate, fill, counts, project)


def check_counts(counts, T: int) -> tuple[int, int]:
    """`counts` given by a caller for a [B, T] mask, checked for what they can be: (fewest, most) whole
    numbers with 0 <= fewest <= most <= T. (That they are the mask's is the caller's: `mode_counts`.)"""
    ok = (isinstance(counts, (tuple, list)) and len(counts) == 2
          and all(isinstance(c, int) and not isinstance(c, bool) for c in counts) and 0 <= counts[0] <= counts[1] <= T)
    if not ok:
        raise ValueError(f"counts must be (fewest, most) attention positions in a row, 0 <= fewest <= most <= "
                         f"T = {T}, as mode_counts(mask)[0] gives them; got {counts!r}")
    return tuple(counts)


def mode_counts(mask: torch.Tensor) -> list[tuple[int, int]]:
    """(fewest, most) True entries in a row of each [B, T] slice of mask [B, T] or [L, B, T]: a list
    with one pair per slice (one for a [B, T] mask), read to the host in one synchronisation."""
    per_row = mask.sum(-1)
    per_row = per_row[None] if per_row.dim() == 1 else per_row.flatten(0, -2)  # [L, B]
    if per_row.shape[1] == 0:
        return [(0, 0)] * per_row.shape[0]
    pairs = torch.stack([per_row.min(-1).values, per_row.max(-1).values], -1).tolist()
    return [(int(a), int(b)) for a, b in pairs]


__all__ = ["Packing", "causal_attention", "mode_counts", "naive_attention", "positioned_attention", "sparse_attention"]
