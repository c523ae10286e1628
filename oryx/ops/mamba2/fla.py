"""Mamba-2 on CUDA through fla-core's `chunk_simple_gla`: its scalar per-head decay `g` is the Mamba-2
(SSD) recurrence, S_t = exp(g_t) S_{t-1} + k_t v_tᵀ, o_t = scale · S_tᵀ q_t, in Triton chunk kernels.

fla's kernels use their own 64-position chunks; `chunk_size` tunes the PyTorch path only.
"""

from __future__ import annotations

import torch

from oryx.ops import flacore


def fla_mamba2(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_mamba2`: q, k [B, T, H, K]; v [B, T, H, V]; g [B, T, H];
    initial_state [B, H, K, V] -> o [B, T, H, V] in v's dtype, final state [B, H, K, V] float32 or None."""
    from fla.ops.simple_gla import chunk_simple_gla

    return flacore.run_padded(chunk_simple_gla, q, k, v, (g.float(),), scale, initial_state, output_final_state)


load = flacore.loader(fla_mamba2)
