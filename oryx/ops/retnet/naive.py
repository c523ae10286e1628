"""Reference for RetNet's retention: a plain loop over output positions, in the paper's parallel form.

    S_t = γ_h S_{t-1} + k_t v_tᵀ                          S: [K, V] per (batch, head), γ_h = exp(log_decay_h)
    o_t = scale · S_tᵀ q_t
        = scale · (γ_h^(t+1) S_0ᵀ q_t + Σ_{s<=t} γ_h^(t-s) (q_t · k_s) v_s)

Written from the sum on the right (retention as decayed attention, Sun et al. 2023, eq. 5-6), not from
the recurrence: the fast paths run the recurrence (Mamba-2's, with the decay held constant), so the two
are independent checks of each other. Quadratic in T: for tests only.
"""

from __future__ import annotations

import torch

from oryx.ops.precision import acc_dtype


def naive_retnet(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The contract of `naive_mamba2` (oryx.ops.mamba2.naive) with log_decay [H] (log γ_h < 0, the same
    at every position) in place of g [B, T, H]: o [B, T, H, V] in v's dtype, the final state
    [B, H, K, V] in the accumulation dtype when `output_final_state`."""
    acc = acc_dtype(v.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, v, log_decay = (x.to(acc) for x in (q, k, v, log_decay))
    S0 = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    ages = torch.arange(T, device=q.device, dtype=acc)
    outs = []
    for t in range(T):
        decay = (ages[: t + 1].flip(0)[:, None] * log_decay).exp()                 # [t+1, H]: γ^(t-s)
        scores = torch.einsum("bhk,bshk->bsh", q[:, t], k[:, : t + 1]) * decay     # [B, t+1, H]
        past = torch.einsum("bsh,bshv->bhv", scores, v[:, : t + 1])
        start = ((t + 1) * log_decay).exp()[:, None] * torch.einsum("bhk,bhkv->bhv", q[:, t], S0)
        outs.append(scale * (past + start))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    final = None
    if output_final_state:
        decay = ((T - 1 - ages)[:, None] * log_decay).exp()                         # [T, H]: γ^(T-1-s)
        final = (T * log_decay).exp()[:, None, None] * S0 + torch.einsum("sh,bshk,bshv->bhkv", decay, k, v)
    return o.to(v.dtype), final
