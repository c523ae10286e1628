"""The dtype arithmetic runs in: float32 for half types and float32, float64 kept for reference tests."""

import torch


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def upcast(x: torch.Tensor) -> torch.Tensor:
    """x in its accumulation dtype."""
    return x.to(acc_dtype(x.dtype))
