"""Gated DeltaNet on CUDA through fla-core's `chunk_gated_delta_rule` (WY-form Triton chunk kernels):
S_t = exp(g_t)(I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ, o_t = scale · S_tᵀ q_t, q and k L2-normalised
by the caller.

fla's kernels use their own 64-position chunks; `chunk_size` tunes the PyTorch path only.
"""

from __future__ import annotations

import torch

from oryx.ops import flacore


def fla_gdn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_gdn`: q, k [B, T, H, K]; v [B, T, H, V]; g, beta [B, T, H];
    initial_state [B, H, K, V] -> o [B, T, H, V] in v's dtype, final state [B, H, K, V] float32 or None."""
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    # beta in the activations' dtype, as fla's own GatedDeltaNet layer passes it
    gates = (g.float(), beta.to(q.dtype))
    return flacore.run_padded(chunk_gated_delta_rule, q, k, v, gates, scale, initial_state, output_final_state)


load = flacore.loader(fla_gdn)
