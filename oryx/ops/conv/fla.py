"""Causal depthwise convolution on CUDA through fla-core's Triton kernel (`fla.modules.causal_conv1d`).

fla's kernel reads each input once and fuses bias and SiLU; the shifted-product path (depthwise.py)
costs 3.4 ms forward+backward at [1, 32768, 2048] bf16 on the H200, fla's 1.6 ms
(benchmarks/results/mixer-parts-h200.md). fla keeps a conv state of the last W inputs as [B, C, W]; ours is the
last W-1 as [B, W-1, C] (what decoding needs), converted at the boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oryx.ops import flacore
from oryx.ops.conv.naive import last_inputs, past_inputs


def fla_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    activation: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `naive_causal_conv1d`: x [B, T, C], weight [C, W], state [B, W-1, C] -> y, state."""
    from fla.modules.causal_conv1d import causal_conv1d

    W = weight.shape[1]
    past = past_inputs(x, state, W)
    # fla's state holds the last W inputs, newest last: ours with one (unread) zero column in front
    initial = None if state is None else F.pad(past.transpose(1, 2), (1, 0))
    y, _ = causal_conv1d(
        x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), initial_state=initial,
        activation=activation,
    )
    return y, last_inputs(past, x, W)


load = flacore.loader(fla_causal_conv1d)
