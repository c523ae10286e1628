"""Reference rotary position embedding (rotate-half form) in float32 (float64 for float64 inputs)."""

from __future__ import annotations

import torch

from oryx.ops.precision import acc_dtype


def rotary_tables(positions: torch.Tensor, dim: int, theta: float, dtype: torch.dtype):
    """cos, sin [*positions.shape, dim/2] in `dtype` for the rotation of a head of size `dim`."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=positions.device, dtype=dtype) / dim))
    angles = positions.to(dtype)[..., None] * inv_freq                                  # [..., D/2]
    return angles.cos(), angles.sin()


def naive_rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """x: [B, T, H, D] (D even); positions: [T] or [B, T] absolute positions -> [B, T, H, D]."""
    acc = acc_dtype(x.dtype)
    cos, sin = rotary_tables(positions, x.shape[-1], theta, acc)
    if positions.dim() == 1:
        cos, sin = cos[None], sin[None]
    cos, sin = cos[:, :, None], sin[:, :, None]                                          # [B|1, T, 1, D/2]
    x1, x2 = x.to(acc).chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
