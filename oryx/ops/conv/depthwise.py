"""Causal depthwise convolution through `F.conv1d` (every device)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    activation: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `naive_causal_conv1d`: x [B, T, C], weight [C, W], state [B, W-1, C]."""
    B, T, C = x.shape
    W = weight.shape[1]
    past = x.new_zeros(B, W - 1, C) if state is None else state.to(x.dtype)
    full = torch.cat([past, x], dim=1)                                   # [B, W-1+T, C]
    y = F.conv1d(full.transpose(1, 2), weight[:, None, :].to(x.dtype), bias, groups=C).transpose(1, 2)
    if activation == "silu":
        y = F.silu(y)
    return y, full[:, T:]
