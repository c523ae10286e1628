"""Reference gated RMSNorm: plain PyTorch in float32 (float64 for float64 inputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oryx.ops.precision import upcast


def naive_gated_rms_norm(
    x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float, group: int
) -> torch.Tensor:
    """rmsnorm(x) · weight · SiLU(z), the norm taken over each group of `group` channels.

    x, z: [B, T, C] (C a multiple of group); weight: [C] -> [B, T, C] in z's dtype.
    """
    xf = upcast(x).unflatten(-1, (-1, group))
    xf = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).flatten(-2)
    return (xf * weight.to(xf.dtype) * F.silu(upcast(z))).to(z.dtype)
