"""Attention on CUDA: which kernel runs which call.

    all positions in attention mode   full causal attention through SDPA, cuDNN first, then flash
    some positions                    their packed queries through FlexAttention (flex.py), cost ∝ n
    a few queries (decoding steps)    SDPA with a dense position mask: nothing compiled per step

Value heads wider than 128 (the grouped Mamba-2 layout) are split into heads of 128 (flex.split_values).
"""

from __future__ import annotations

import importlib.util

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from oryx.ops.attention.flex import flex_positioned_attention, flex_query_bucket, merge_values, split_values
from oryx.ops.attention.sdpa import causal_attention, positioned_attention

# cuDNN first: causal fwd+bwd at N=32768, 16 heads of 128, bf16 on the H200 took 28.9 ms with cuDNN,
# 47.2 ms with flash, 106.8 ms with the memory-efficient kernel (benchmarks/results/kernels-h200.json,
# `full_attention_backends`); the others follow for shapes and dtypes cuDNN rejects (float32).
SDPA_ORDER = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
# below this many packed queries (decoding steps, short prompts) the dense-mask SDPA call is cheaper
# than building a block mask, and it compiles nothing
FLEX_MIN_QUERIES = 64


def available() -> bool:
    """A CUDA device and Triton (which FlexAttention compiles to)."""
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


def full_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """q, k [B, T, H, K]; v [B, T, H, V] -> o [B, T, H, V], causal, fused SDPA kernel."""
    q, k, v, c = split_values(q, k, v)
    with sdpa_kernel(SDPA_ORDER, set_priority=True):
        o = causal_attention(q, k, v, scale)
    return merge_values(o, c)


def packed_slots(most: int) -> int:
    """Rows to pack `most` attention-mode queries into: FlexAttention's bucketed length (the padding
    happens in the packing itself, no copy of the packed queries)."""
    return most if most < FLEX_MIN_QUERIES else flex_query_bucket(most)


def packed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float
) -> torch.Tensor:
    """Same contract as `positioned_attention` (q_pos non-decreasing per row, as `Packing` makes it)."""
    if q.shape[1] < FLEX_MIN_QUERIES:
        return positioned_attention(q, k, v, q_pos, scale)
    return flex_positioned_attention(q, k, v, q_pos, scale)
