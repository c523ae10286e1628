"""Short causal depthwise convolution with a carried state (for decoding). `causal_conv1d` is the
public entry; `naive.py` is the reference."""

from __future__ import annotations

import torch

from oryx.ops.backend import for_long_calls, pick
from oryx.ops.conv import fla
from oryx.ops.conv.depthwise import shifted_causal_conv1d
from oryx.ops.conv.naive import naive_causal_conv1d

ACTIVATIONS = (None, "silu")   # what every implementation applies after the convolution
# decoding steps (T = 1) and short calls stay on the shifted products: nothing to launch per step
KERNEL_FROM = 16

# "triton": fla-core's fused kernel on CUDA
IMPLEMENTATIONS = {
    "naive": naive_causal_conv1d,
    "torch": shifted_causal_conv1d,
    "triton": for_long_calls(fla.load, shifted_causal_conv1d, KERNEL_FROM),
}


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    activation: str | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """y_t = act(bias + sum_i weight[:, i] * x_{t - W + 1 + i}), inputs before 0 read from `state`.

    x: [B, T, C]; weight: [C, W]; state: [B, W-1, C] (the W-1 inputs before x) or None (zeros).
    Returns y [B, T, C] and the new state [B, W-1, C].
    """
    B, _, C = x.shape if x.dim() == 3 else (None, None, None)
    W = weight.shape[-1]
    if (
        x.dim() != 3 or weight.shape != (C, W) or W < 1 or (bias is not None and bias.shape != (C,))
        or (state is not None and state.shape != (B, W - 1, C))
    ):
        raise ValueError(
            f"causal_conv1d needs x [B, T, C], weight [C, W], bias [C], state [B, W-1, C]: x {tuple(x.shape)}, "
            f"weight {tuple(weight.shape)}, bias {None if bias is None else tuple(bias.shape)}, "
            f"state {None if state is None else tuple(state.shape)}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"causal_conv1d activation {activation!r}: choose one of {ACTIVATIONS}")
    fn = pick("causal_conv1d", IMPLEMENTATIONS, backend, x.device)
    return fn(x, weight, bias, state, activation)


__all__ = ["causal_conv1d", "naive_causal_conv1d", "shifted_causal_conv1d"]
