"""Reference for the Mamba-2 (scalar-decay) recurrence: a plain loop over time.

    S_t = exp(g_t) * S_{t-1} + k_t v_tᵀ          S: [K, V] per (batch, head)
    o_t = scale * S_tᵀ q_t

The Mamba-2 mixer feeds `v = dt * x`, `g = dt * A` (A < 0), `k = B`, `q = C`; the `D * x` skip is added
by the mixer. This is the paper's recurrence, written for reading, not speed. It is also the decoding
step: with T = 1 it does one update of the state.
"""

from __future__ import annotations

import torch

from oryx.ops.precision import acc_dtype


def naive_mamba2(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Args:
        q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] log-decay (<= 0).
        initial_state: [B, H, K, V] or None (zeros).
    Returns:
        o: [B, T, H, V] in the dtype of v; final state [B, H, K, V] (float32, or float64 for float64
        inputs) when `output_final_state`, else None.
    """
    acc = acc_dtype(v.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, v, g = (x.to(acc) for x in (q, k, v, g))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        S = g[:, t, :, None, None].exp() * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o.to(v.dtype), (S if output_final_state else None)
