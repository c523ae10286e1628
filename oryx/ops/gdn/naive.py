"""Reference for the Gated DeltaNet recurrence: a plain loop over time.

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ,   α_t = exp(g_t)     S: [K, V]
    o_t = scale * S_tᵀ q_t

q and k are expected L2-normalised per head (the mixer does it). Also the decoding step (T = 1).
"""

from __future__ import annotations

import torch

from oryx.ops.precision import acc_dtype


def naive_gdn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Args:
        q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] log-decay (<= 0); beta: [B, T, H] in (0, 1).
        initial_state: [B, H, K, V] or None (zeros).
    Returns:
        o: [B, T, H, V]; final state [B, H, K, V] in float32 (float64 for float64 inputs) or None.
    """
    acc = acc_dtype(v.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, v, g, beta = (x.to(acc) for x in (q, k, v, g, beta))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        k_t, v_t, b_t = k[:, t], v[:, t], beta[:, t, :, None]          # [B,H,K], [B,H,V], [B,H,1]
        S = g[:, t, :, None, None].exp() * S
        v_old = torch.einsum("bhk,bhkv->bhv", k_t, S)                   # what the state recalls for k_t
        S = S + k_t[..., :, None] * (b_t * (v_t - v_old))[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o.to(v.dtype), (S if output_final_state else None)
