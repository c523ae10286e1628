"""Fresh random inputs of the linear recurrences, for the tests and the benchmarks.

Each recurrence's folder has an `example_inputs(B, T, H, K, V, dtype, device)` returning its keyword
arguments; the parts they share are drawn here, in the ranges the mixer feeds: q, k, v in the
activations' `dtype`, gates and the initial state in its accumulation dtype (float32, or float64 for
float64 inputs), every tensor a leaf that requires grad unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oryx.ops.precision import acc_dtype


def qkv_and_state(
    B: int, T: int, H: int, K: int, V: int, dtype: torch.dtype, device: str | torch.device, unit_keys: bool = False
) -> dict[str, torch.Tensor]:
    """q, k [B, T, H, K] (L2-normalised when `unit_keys`), v [B, T, H, V], initial_state [B, H, K, V]."""
    acc = acc_dtype(dtype)
    q, k = (torch.randn(B, T, H, K, device=device, dtype=acc) for _ in range(2))
    if unit_keys:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    x = {
        "q": q.to(dtype),
        "k": k.to(dtype),
        "v": torch.randn(B, T, H, V, device=device, dtype=acc).to(dtype),
        "initial_state": 0.1 * torch.randn(B, H, K, V, device=device, dtype=acc),
    }
    return {n: t.requires_grad_() for n, t in x.items()}


def log_decays(*shape: int, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
    """Per-position log-decays g < 0 of `shape` (mostly near 0, a few large), a leaf requiring grad."""
    return F.logsigmoid(torch.randn(*shape, device=device, dtype=acc_dtype(dtype)) + 2.0).requires_grad_()
