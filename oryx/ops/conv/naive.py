"""Reference causal depthwise convolution: a loop over time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oryx.ops.precision import upcast


def past_inputs(x: torch.Tensor, state: torch.Tensor | None, width: int) -> torch.Tensor:
    """The W-1 inputs before x [B, T, C]: `state` [B, W-1, C] in x's dtype, or zeros."""
    return x.new_zeros(x.shape[0], width - 1, x.shape[2]) if state is None else state.to(x.dtype)


def last_inputs(past: torch.Tensor, x: torch.Tensor, width: int) -> torch.Tensor:
    """The next state: the last W-1 of the inputs `past` [B, W-1, C] followed by x [B, T, C], in storage
    of its own (a cache keeps it; a view would keep x alive)."""
    keep, T = width - 1, x.shape[1]
    if keep == 0:
        return past
    return x[:, T - keep :].clone() if keep <= T else torch.cat([past[:, T:], x], dim=1)


def naive_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    activation: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """y_t = act(bias + sum_i weight[:, i] * x_{t - W + 1 + i}), with x before 0 read from `state`.

    x: [B, T, C]; weight: [C, W]; state: [B, W-1, C] (the W-1 inputs before x) or None (zeros).
    Returns y [B, T, C] and the new state [B, W-1, C].
    """
    T, W = x.shape[1], weight.shape[1]
    full = upcast(torch.cat([past_inputs(x, state, W), x], dim=1))
    ys = []
    for t in range(T):
        y = (full[:, t : t + W] * weight.to(full.dtype).t()[None]).sum(1)
        ys.append(y if bias is None else y + bias.to(full.dtype))
    y = torch.stack(ys, 1) if ys else full[:, :0]
    if activation == "silu":
        y = F.silu(y)
    return y.to(x.dtype), full[:, T:].to(x.dtype, copy=True)   # not a view: a cache would pin `full`
