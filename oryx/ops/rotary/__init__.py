"""Rotary position embedding (RoPE, rotate-half form). `rotary` is the public entry; `naive.py` is the
reference (plain PyTorch, also the `torch` path), `kernel.py` the project's Triton kernel for CUDA."""

from __future__ import annotations

import torch

from oryx.ops.backend import for_long_calls, pick
from oryx.ops.rotary import kernel
from oryx.ops.rotary.naive import naive_rotary, rotary_tables

# "triton": the project's kernel on CUDA (kernel.py; float64 stays on the reference)
IMPLEMENTATIONS = {"naive": naive_rotary, "torch": naive_rotary, "triton": for_long_calls(kernel.load, naive_rotary, 1)}


def rotary(x: torch.Tensor, positions: torch.Tensor, theta: float, backend: str = "auto") -> torch.Tensor:
    """x rotated at its absolute positions: pairs (x_i, x_{i+D/2}) by angle position · theta^(-2i/D).

    x: [B, T, H, D], D even; positions: [T] (shared by the batch) or [B, T] -> [B, T, H, D].
    """
    if x.dim() != 4 or x.shape[-1] % 2 or positions.shape not in ((x.shape[1],), tuple(x.shape[:2])):
        raise ValueError(
            f"rotary needs x [B, T, H, D] with an even head size D and positions [T] or [B, T]: "
            f"x {tuple(x.shape)}, positions {tuple(positions.shape)}"
        )
    if not theta > 0:
        raise ValueError(f"rotary needs a positive base theta, got {theta}")
    fn = pick("rotary", IMPLEMENTATIONS, backend, x.device)
    return fn(x, positions, theta)


__all__ = ["naive_rotary", "rotary", "rotary_tables"]
