"""Causal depthwise convolution as a sum of shifted products (every device).

With kernel sizes of 4 a depthwise conv is W multiply-adds per element; writing it that way keeps the
[B, T, C] layout (no transposes, a contiguous output) and beats a grouped `F.conv1d`, which falls on
slow depthwise kernels (measured 1.7x slower forward+backward on the CPU at T=8192, C=1024).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oryx.ops.conv.naive import last_inputs, past_inputs


def shifted_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    activation: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `naive_causal_conv1d`: x [B, T, C], weight [C, W], state [B, W-1, C] -> y, state."""
    T, W = x.shape[1], weight.shape[1]
    past = past_inputs(x, state, W)
    full = torch.cat([past, x], dim=1)                                   # [B, W-1+T, C]
    w = weight.to(x.dtype)
    y = full[:, W - 1 :] * w[:, W - 1]                                   # tap on the current position
    for i in range(W - 1):
        y = y + full[:, i : i + T] * w[:, i]                             # x_{t-W+1+i}
    if bias is not None:
        y = y + bias.to(x.dtype)
    if activation == "silu":
        y = F.silu(y)
    return y, last_inputs(past, x, W)   # its own storage: a view of `full` would keep it alive in a cache
