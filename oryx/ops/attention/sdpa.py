"""Attention through PyTorch's scaled_dot_product_attention (flash / cuDNN / memory-efficient / math)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Full causal attention, queries and keys both at positions 0..T-1.

    q, k: [B, T, H, K]; v: [B, T, H, V] -> o: [B, T, H, V].
    """
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=scale
    )
    return o.transpose(1, 2)


def positioned_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float
) -> torch.Tensor:
    """Queries at given positions against all keys, causal by position (same contract as
    `naive_attention`): q [B, Tq, H, K], k [B, S, H, K], v [B, S, H, V], q_pos [B, Tq] -> [B, Tq, H, V].

    Cost is O(Tq * S): with Tq the number of attention-mode positions, it scales with them.
    """
    visible = torch.arange(k.shape[1], device=k.device)[None, None, :] <= q_pos[:, :, None]  # [B,Tq,S]
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=visible[:, None], scale=scale
    )
    return o.transpose(1, 2)
