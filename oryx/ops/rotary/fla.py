"""Rotary embedding on CUDA through fla-core's Triton kernel (`fla.modules.rotary.rotary_embedding`):
one read and one write of x, the cos/sin tables built per call at the given positions.

fla's kernel indexes its tables by position along the sequence; positions that differ per row (the
packed attention-mode queries) are handled by flattening the batch into one sequence whose tables are
gathered at each element's own position. fla takes the tables in x's dtype: in bf16 they are rounded
to bf16 after being formed in float32 (an error of the size of the output's own bf16 rounding).
"""

from __future__ import annotations

import torch

from oryx.ops import flacore
from oryx.ops.rotary.naive import rotary_tables


def fla_rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Same contract as `naive_rotary`: x [B, T, H, D]; positions [T] or [B, T] -> [B, T, H, D]."""
    from fla.modules.rotary import rotary_embedding

    B, T, H, D = x.shape
    cos, sin = rotary_tables(positions.expand(B, T).reshape(-1), D, theta, torch.float32)    # [B*T, D/2]
    # fla wants the tables in x's dtype (it computes in float32 inside); angles are formed in float32
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return rotary_embedding(x.reshape(1, B * T, H, D), cos, sin).view(B, T, H, D)


load = flacore.loader(fla_rotary)
