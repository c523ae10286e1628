"""Causal depthwise conv against its loop reference; carried state equals one pass."""

from __future__ import annotations

import pytest
import torch

from oryx.ops.conv import causal_conv1d, naive_causal_conv1d
from oryx.ops.conv.naive import last_inputs, past_inputs
from tests.utils import assert_close


@pytest.mark.parametrize("activation", [None, "silu"], ids=["none", "silu"])
@pytest.mark.parametrize("B,T,C,W", [(1, 1, 3, 4), (2, 19, 8, 4), (3, 40, 5, 2)], ids=lambda x: str(x))
def test_conv_matches_naive(B, T, C, W, activation):
    x = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    w = torch.randn(C, W, dtype=torch.float64, requires_grad=True)
    b = torch.randn(C, dtype=torch.float64, requires_grad=True)
    state = torch.randn(B, W - 1, C, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(B, T, C, dtype=torch.float64)
    ry, rs = naive_causal_conv1d(x, w, b, state, activation)
    y, s = causal_conv1d(x, w, b, state, activation)
    assert_close("y", ry, y, 1e-12)
    assert_close("state", rs, s, 1e-12)
    rg = torch.autograd.grad((ry * dy).sum(), (x, w, b, state))
    g = torch.autograd.grad((y * dy).sum(), (x, w, b, state))
    for name, r, o in zip(("dx", "dw", "db", "dstate"), rg, g):
        assert_close(name, r, o, 1e-12)


def test_conv_state_carries_across_calls():
    x = torch.randn(2, 30, 6, dtype=torch.float64)
    w = torch.randn(6, 4, dtype=torch.float64)
    y_all, s_all = causal_conv1d(x, w, None, None, "silu")
    y1, s1 = causal_conv1d(x[:, :11], w, None, None, "silu")
    y2, s2 = causal_conv1d(x[:, 11:12], w, None, s1, "silu")
    y3, s3 = causal_conv1d(x[:, 12:], w, None, s2, "silu")
    assert_close("y", y_all, torch.cat([y1, y2, y3], 1), 1e-12)
    assert_close("state", s_all, s3, 1e-12)


@pytest.mark.parametrize("W", [1, 2, 4])
@pytest.mark.parametrize("T", [1, 2, 9])
def test_next_state_is_the_last_inputs(W, T):
    """What the fla path returns as the new state (it cannot run here): the reference's state."""
    x = torch.randn(2, T, 3, dtype=torch.float64)
    state = torch.randn(2, W - 1, 3, dtype=torch.float64)
    w = torch.randn(3, W, dtype=torch.float64)
    _, ref = naive_causal_conv1d(x, w, None, state)
    assert torch.equal(last_inputs(past_inputs(x, state, W), x, W), ref)
    assert last_inputs(past_inputs(x, None, W), x, W).shape == (2, W - 1, 3)


@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_new_state_owns_its_memory(backend):
    """The state a cache keeps holds W-1 positions, not a view into the whole (long) input."""
    x = torch.randn(2, 500, 8)
    _, s = causal_conv1d(x, torch.randn(8, 4), None, None, "silu", backend)
    assert s.shape == (2, 3, 8) and s.untyped_storage().nbytes() == s.numel() * s.element_size()
