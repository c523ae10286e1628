"""RetNet's retention: the Mamba-2 recurrence with a constant decay per head. `retnet_recurrence` is the
public entry; `naive.py` is the reference (the parallel form, a loop over positions);
`example_inputs` draws inputs for tests and benchmarks.

The fast paths are Mamba-2's (oryx.ops.mamba2), run with the decay repeated at every position: the
chunked PyTorch recurrence on every device (the step recurrence for short calls) and fla-core's
`chunk_simple_gla` on CUDA (with its Hopper guard, oryx/ops/flacore.py). fla-core also takes a constant
decay directly (`g_gamma`); the per-position form is used so that RetNet runs exactly the kernels
already checked on the device for Mamba-2, at the cost of one [B, T, H] float32 tensor.
"""

from __future__ import annotations

from functools import cache

import torch

from oryx.errors import OryxError
from oryx.ops import mamba2
from oryx.ops.backend import pick
from oryx.ops.checks import check_linear_inputs
from oryx.ops.examples import qkv_and_state
from oryx.ops.precision import acc_dtype
from oryx.ops.retnet.naive import naive_retnet


def _on_mamba2(fn):
    """A Mamba-2 implementation `fn` run with `log_decay` [H] as its per-position decay g [B, T, H]."""

    def run(q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size):
        g = log_decay.to(acc_dtype(v.dtype)).expand(*q.shape[:2], -1).contiguous()
        return fn(q, k, v, g, scale, initial_state, output_final_state, chunk_size)

    return run


def _naive(q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size):
    return naive_retnet(q, k, v, log_decay, scale, initial_state, output_final_state)


@cache
def _triton():
    kernel = mamba2.IMPLEMENTATIONS["triton"]()
    return None if kernel is None else _on_mamba2(kernel)


IMPLEMENTATIONS = {"naive": _naive, "torch": _on_mamba2(mamba2.IMPLEMENTATIONS["torch"]), "triton": _triton}


def retnet_recurrence(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """S_t = γ_h S_{t-1} + k_t v_tᵀ, o_t = scale · S_tᵀ q_t, γ_h = exp(log_decay_h) the same at every position.

    q, k: [B, T, H, K]; v: [B, T, H, V]; log_decay: [H] (< 0); initial_state: [B, H, K, V] (float32).
    Returns o [B, T, H, V] and, when asked, the final state [B, H, K, V] in float32.
    """
    check_linear_inputs(q, k, v, None, None, initial_state)
    if log_decay.shape != (q.shape[2],):
        raise OryxError(f"log_decay must be [H] = [{q.shape[2]}], got {tuple(log_decay.shape)}")
    fn = pick("retnet", IMPLEMENTATIONS, backend, q.device)
    return fn(q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size)


def example_inputs(
    B: int, T: int, H: int, K: int, V: int, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Fresh random keyword inputs of `retnet_recurrence` (oryx.ops.examples): log_decay [H] a constant
    (no gradient), γ = 1 − 2^-u with u uniform in [1, 12] (RetNet's decays span 1 − 2^-5 .. 1 − 2^-12)."""
    u = torch.empty(H, device=device, dtype=acc_dtype(dtype)).uniform_(1.0, 12.0)
    return {**qkv_and_state(B, T, H, K, V, dtype, device), "log_decay": torch.log1p(-torch.exp2(-u))}


__all__ = ["example_inputs", "naive_retnet", "retnet_recurrence"]
