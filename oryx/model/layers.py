"""Small building blocks: RMSNorm, gated RMSNorm, SwiGLU MLP, causal conv module."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from oryx.ops import causal_conv1d, gated_rms_norm
from oryx.ops.precision import upcast


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dim, computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = upcast(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(xf.dtype)).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """GatedRMSNorm(o, z) = rmsnorm_per_head(o) * weight * SiLU(z): the shared output gate of both modes.

    o: [B, T, H, V], z: [B, T, H * V] (the gate projection, before its SiLU) -> [B, T, H * V].
    """

    def __init__(self, num_heads: int, head_dim: int, eps: float, backend: str = "auto"):
        super().__init__()
        self.eps, self.head_dim, self.backend = eps, head_dim, backend
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))

    def forward(self, o: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return gated_rms_norm(o.flatten(-2), z, self.weight, self.eps, self.head_dim, self.backend)


class SwiGLU(nn.Module):
    """w_down(silu(w_gate x) * w_up x)."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w_gate = nn.Linear(d_model, hidden, bias=False)
        self.w_up = nn.Linear(d_model, hidden, bias=False)
        self.w_down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class CausalConv(nn.Module):
    """Depthwise causal conv over [B, T, C] with a decoding state of the last `size - 1` inputs."""

    def __init__(self, channels: int, size: int, activation: str | None, backend: str = "auto"):
        super().__init__()
        self.activation, self.backend = activation, backend
        self.weight = nn.Parameter(torch.empty(channels, size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv1d's default for a depthwise kernel

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, T, C], state: [B, size-1, C] or None -> (y [B, T, C], new state [B, size-1, C])."""
        return causal_conv1d(x, self.weight, self.bias, state, self.activation, self.backend)
