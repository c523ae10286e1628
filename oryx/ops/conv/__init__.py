"""Short causal depthwise convolution with a carried state (for decoding)."""

from oryx.ops.conv.depthwise import causal_conv1d
from oryx.ops.conv.naive import naive_causal_conv1d

__all__ = ["causal_conv1d", "naive_causal_conv1d"]
