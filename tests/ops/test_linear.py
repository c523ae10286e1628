"""Chunked recurrences (and the dispatcher) against the plain loop-over-time references.

Forward and backward, including the gradient flowing into the initial state, on fresh random inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oryx.errors import OryxError
from oryx.ops import gdn, mamba2
from oryx.ops.gdn.chunk import chunk_gdn
from oryx.ops.gdn.naive import naive_gdn
from oryx.ops.mamba2.chunk import chunk_mamba2
from oryx.ops.mamba2.naive import naive_mamba2
from tests.utils import assert_close

CASES = [
    # B, T, H, K, V, chunk, dtype, tolerance
    pytest.param(1, 1, 1, 4, 4, 8, torch.float64, 1e-12, id="B1-T1-H1-K4-V4-C8-f64"),
    pytest.param(2, 37, 3, 8, 5, 8, torch.float64, 1e-12, id="B2-T37-H3-K8-V5-C8-f64"),
    pytest.param(2, 64, 2, 16, 16, 16, torch.float64, 1e-12, id="B2-T64-H2-K16-V16-C16-f64"),
    pytest.param(1, 100, 4, 16, 32, 32, torch.float32, 2e-5, id="B1-T100-H4-K16-V32-C32-f32"),
    pytest.param(3, 130, 2, 32, 8, 64, torch.float32, 2e-5, id="B3-T130-H2-K32-V8-C64-f32"),
]


def _inputs(B, T, H, K, V, dtype, gated_delta: bool):
    q = torch.randn(B, T, H, K, dtype=dtype)
    k = torch.randn(B, T, H, K, dtype=dtype)
    if gated_delta:  # the delta rule expects unit-norm q, k (the mixer normalises them)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    else:
        q, k = q / K**0.5, k / K**0.5
    v = torch.randn(B, T, H, V, dtype=dtype)
    g = -torch.rand(B, T, H, dtype=dtype) * 0.5          # log-decay in (-0.5, 0]
    beta = torch.rand(B, T, H, dtype=dtype)
    s0 = torch.randn(B, H, K, V, dtype=dtype) * 0.5
    return [t.requires_grad_() for t in (q, k, v, g, beta, s0)]


def _run(fn, args, grads_out):
    """Forward, then backward of a random projection of (o, final state); returns outputs and grads."""
    o, s = fn(*args)
    do, ds = grads_out
    ((o * do).sum() + (s * ds).sum()).backward()
    out = [o.detach(), s.detach()] + [a.grad.clone() for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    for a in args:
        if isinstance(a, torch.Tensor) and a.grad is not None:
            a.grad = None
    return out


NAMES = ["o", "final_state", "dq", "dk", "dv", "dg", "dbeta", "dh0"]


@pytest.mark.parametrize("B,T,H,K,V,chunk,dtype,tol", CASES)
def test_mamba2_chunk_matches_naive(B, T, H, K, V, chunk, dtype, tol):
    q, k, v, g, _, s0 = _inputs(B, T, H, K, V, dtype, gated_delta=False)
    grads_out = (torch.randn(B, T, H, V, dtype=dtype), torch.randn(B, H, K, V, dtype=dtype))
    ref = _run(lambda *a: naive_mamba2(*a[:4], 0.7, a[4], True), (q, k, v, g, s0), grads_out)
    out = _run(lambda *a: chunk_mamba2(*a[:4], 0.7, a[4], True, chunk), (q, k, v, g, s0), grads_out)
    for name, r, o in zip([n for n in NAMES if n != "dbeta"], ref, out):
        assert_close(f"mamba2 {name}", r, o, tol)


@pytest.mark.parametrize("B,T,H,K,V,chunk,dtype,tol", CASES)
def test_gdn_chunk_matches_naive(B, T, H, K, V, chunk, dtype, tol):
    q, k, v, g, beta, s0 = _inputs(B, T, H, K, V, dtype, gated_delta=True)
    grads_out = (torch.randn(B, T, H, V, dtype=dtype), torch.randn(B, H, K, V, dtype=dtype))
    scale = K**-0.5
    ref = _run(lambda *a: naive_gdn(*a[:5], scale, a[5], True), (q, k, v, g, beta, s0), grads_out)
    out = _run(lambda *a: chunk_gdn(*a[:5], scale, a[5], True, chunk), (q, k, v, g, beta, s0), grads_out)
    for name, r, o in zip(NAMES, ref, out):
        assert_close(f"gdn {name}", r, o, tol)


@pytest.mark.parametrize("T", [1, 5, 15, 16, 40], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("op", ["mamba2", "gdn"])
def test_dispatcher_torch_equals_naive_backend(op, T):
    """The `torch` backend switches between the step recurrence and chunks by length: same result."""
    q, k, v, g, beta, s0 = (t.detach() for t in _inputs(2, T, 2, 8, 8, torch.float64, op == "gdn"))
    if op == "mamba2":
        a = mamba2(q, k, v, g, 1.0, s0, True, backend="torch", chunk_size=8)
        b = mamba2(q, k, v, g, 1.0, s0, True, backend="naive")
    else:
        a = gdn(q, k, v, g, beta, 0.5, s0, True, backend="torch", chunk_size=8)
        b = gdn(q, k, v, g, beta, 0.5, s0, True, backend="naive")
    assert_close(f"{op} o", b[0], a[0], 1e-12)
    assert_close(f"{op} state", b[1], a[1], 1e-12)


@pytest.mark.parametrize("op", ["mamba2", "gdn"])
def test_state_hand_off_equals_one_pass(op):
    """Prefill's final state handed to the next call = processing both parts at once."""
    q, k, v, g, beta, _ = (t.detach() for t in _inputs(1, 50, 2, 8, 4, torch.float64, op == "gdn"))
    fn = (lambda sl, s: mamba2(q[:, sl], k[:, sl], v[:, sl], g[:, sl], 1.0, s, True, "torch", 16)) if op == "mamba2" \
        else (lambda sl, s: gdn(q[:, sl], k[:, sl], v[:, sl], g[:, sl], beta[:, sl], 1.0, s, True, "torch", 16))
    o_all, s_all = fn(slice(0, 50), None)
    o1, s1 = fn(slice(0, 33), None)
    o2, s2 = fn(slice(33, 50), s1)
    assert_close("outputs", o_all, torch.cat([o1, o2], 1), 1e-12)
    assert_close("state", s_all, s2, 1e-12)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(dict(v=torch.randn(2, 9, 2, 4)), id="v-wrong-T"),
        pytest.param(dict(g=torch.randn(2, 8)), id="g-wrong-rank"),
        pytest.param(dict(initial_state=torch.randn(2, 2, 4, 5)), id="state-wrong-V"),
        pytest.param(dict(k=torch.randn(2, 8, 2, 3)), id="k-not-q-shape"),
    ],
)
def test_bad_shapes_raise(bad):
    args = dict(q=torch.randn(2, 8, 2, 4), k=torch.randn(2, 8, 2, 4), v=torch.randn(2, 8, 2, 4),
                g=-torch.rand(2, 8, 2), initial_state=None)
    args.update(bad)
    with pytest.raises(OryxError):
        mamba2(**args)


def test_unknown_and_unavailable_backends():
    q = torch.randn(1, 4, 1, 4)
    with pytest.raises(OryxError, match="unknown backend"):
        mamba2(q, q, q, -torch.rand(1, 4, 1), backend="cuda-magic")
    with pytest.raises(OryxError, match="CUDA"):
        mamba2(q, q, q, -torch.rand(1, 4, 1), backend="triton")
