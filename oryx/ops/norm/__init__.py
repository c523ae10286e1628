"""Gated RMSNorm, the output gate both modes of a mixer share. `gated_rms_norm` is the public entry;
`naive.py` is the reference (plain PyTorch, also the `torch` path)."""

from __future__ import annotations

import torch

from oryx.ops.backend import for_long_calls, pick
from oryx.ops.norm import fla
from oryx.ops.norm.naive import naive_gated_rms_norm

# "triton": fla-core's fused kernel on CUDA (float64 stays on the reference)
IMPLEMENTATIONS = {
    "naive": naive_gated_rms_norm,
    "torch": naive_gated_rms_norm,
    "triton": for_long_calls(fla.load, naive_gated_rms_norm, 1),
}


def gated_rms_norm(
    x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float, group: int, backend: str = "auto"
) -> torch.Tensor:
    """rmsnorm(x) · weight · SiLU(z), the norm over each group of `group` channels (one head each).

    x: [B, T, C] mixer outputs; z: [B, T, C] the gate before its SiLU; weight: [C] -> [B, T, C].
    """
    if group < 1 or x.shape != z.shape or x.shape[-1] % group or weight.shape != (x.shape[-1],):
        raise ValueError(
            f"gated_rms_norm needs x and z of one shape [B, T, C], C a multiple of {group} (the group, >= 1), weight [C]: "
            f"x {tuple(x.shape)}, z {tuple(z.shape)}, weight {tuple(weight.shape)}"
        )
    fn = pick("gated_rms_norm", IMPLEMENTATIONS, backend, x.device)
    return fn(x, z, weight, eps, group)


__all__ = ["gated_rms_norm", "naive_gated_rms_norm"]
