"""Shared test helpers (import as `from tests.utils import assert_close`)."""

from __future__ import annotations

import torch


def rel_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64."""
    ref, out = ref.detach().double(), out.detach().double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float) -> None:
    """Relative error of `out` against `ref` at most `ratio`; NaN never passes (fla's check)."""
    assert ref.shape == out.shape, f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    assert not torch.isnan(out).any(), f"{name}: NaN in output"
    err = rel_err(ref, out)
    assert err <= ratio, f"{name}: relative error {err:.3e} > {ratio:.1e}"
