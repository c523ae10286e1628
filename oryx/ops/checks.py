"""Input checks shared by the public op functions: a wrong shape is a ValueError naming it."""

from __future__ import annotations

import torch

from oryx.errors import OryxError


def check_linear_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor | None,
    initial_state: torch.Tensor | None,
) -> None:
    """q, k [B, T, H, K]; v [B, T, H, V]; g, beta [B, T, H]; initial_state [B, H, K, V]."""
    if q.dim() != 4 or q.shape != k.shape:
        raise OryxError(f"q and k must both be [B, T, H, K], got {tuple(q.shape)} and {tuple(k.shape)}")
    B, T, H, K = q.shape
    if v.dim() != 4 or v.shape[:3] != (B, T, H):
        raise OryxError(f"v must be [B, T, H, V] = [{B}, {T}, {H}, V], got {tuple(v.shape)}")
    for name, x in (("g", g), ("beta", beta)):
        if x is not None and x.shape != (B, T, H):
            raise OryxError(f"{name} must be [B, T, H] = [{B}, {T}, {H}], got {tuple(x.shape)}")
    if initial_state is not None and initial_state.shape != (B, H, K, v.shape[-1]):
        raise OryxError(
            f"initial_state must be [B, H, K, V] = [{B}, {H}, {K}, {v.shape[-1]}], "
            f"got {tuple(initial_state.shape)}"
        )
