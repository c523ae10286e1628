"""Mamba-2 (scalar-decay) recurrence. `mamba2_recurrence` is the public entry; `naive.py` is the reference,
`chunk.py` the CPU fast path, `fla.py` the GPU path; `example_inputs` draws inputs for tests and benchmarks."""

from __future__ import annotations

import torch

from oryx.ops.backend import for_long_calls, pick
from oryx.ops.checks import check_linear_inputs
from oryx.ops.examples import log_decays, qkv_and_state
from oryx.ops.mamba2 import fla
from oryx.ops.mamba2.chunk import chunk_mamba2
from oryx.ops.mamba2.naive import naive_mamba2

# Below this many positions the step-by-step recurrence beats chunking (decoding is T = 1).
RECURRENT_BELOW = 16


def _torch(q, k, v, g, scale, initial_state, output_final_state, chunk_size):
    if q.shape[1] < RECURRENT_BELOW:
        return naive_mamba2(q, k, v, g, scale, initial_state, output_final_state)
    return chunk_mamba2(q, k, v, g, scale, initial_state, output_final_state, chunk_size)


def _naive(q, k, v, g, scale, initial_state, output_final_state, chunk_size):
    return naive_mamba2(q, k, v, g, scale, initial_state, output_final_state)


# "triton": fla-core's chunk kernels on CUDA (oryx/ops/flacore.py: loading, the Hopper guard)
IMPLEMENTATIONS = {"naive": _naive, "torch": _torch, "triton": for_long_calls(fla.load, _torch, RECURRENT_BELOW)}


def mamba2_recurrence(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """S_t = exp(g_t) S_{t-1} + k_t v_tᵀ, o_t = scale · S_tᵀ q_t.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H]; initial_state: [B, H, K, V] (float32).
    Returns o [B, T, H, V] and, when asked, the final state [B, H, K, V] in float32.
    """
    check_linear_inputs(q, k, v, g, None, initial_state)
    fn = pick("mamba2", IMPLEMENTATIONS, backend, q.device)
    return fn(q, k, v, g, scale, initial_state, output_final_state, chunk_size)


def example_inputs(
    B: int, T: int, H: int, K: int, V: int, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Fresh random keyword inputs of `mamba2_recurrence` (oryx.ops.examples): g [B, T, H] per position."""
    return {**qkv_and_state(B, T, H, K, V, dtype, device), "g": log_decays(B, T, H, dtype=dtype, device=device)}


__all__ = ["chunk_mamba2", "example_inputs", "mamba2_recurrence", "naive_mamba2"]
