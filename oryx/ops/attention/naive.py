"""Reference attention for queries at arbitrary positions: explicit masked softmax in float32."""

from __future__ import annotations

import torch

from oryx.ops.precision import acc_dtype


def naive_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float
) -> torch.Tensor:
    """Causal attention by position: query i (at position q_pos[b, i]) sees keys 0..q_pos[b, i].

    Args:
        q: [B, Tq, H, K]; k: [B, S, H, K]; v: [B, S, H, V]; q_pos: [B, Tq] integer positions < S.
    Returns:
        o: [B, Tq, H, V] in the dtype of v.
    """
    acc = acc_dtype(v.dtype)
    scores = torch.einsum("bihk,bjhk->bhij", q.to(acc), k.to(acc)) * scale          # [B,H,Tq,S]
    visible = torch.arange(k.shape[1], device=k.device)[None, None, :] <= q_pos[:, :, None]
    scores = scores.masked_fill(~visible[:, None], float("-inf"))
    return torch.einsum("bhij,bjhv->bihv", scores.softmax(-1), v.to(acc)).to(v.dtype)
