"""Every linear recurrence of the registry (oryx.model.kinds) against its plain loop-over-time reference.

Forward and backward, including the gradient flowing into the initial state, on fresh random inputs
(each op's `example_inputs`): the chunked CPU path (`backend="torch"` from RECURRENT_BELOW positions
on), the dispatcher's switch between the step recurrence and chunks, and the state handed from one
call to the next.
"""

from __future__ import annotations

import pytest
import torch

from oryx.errors import OryxError
from oryx.model.kinds import KINDS
from oryx.ops import mamba2_recurrence
from tests.utils import assert_close

KIND_NAMES = list(KINDS)
CASES = [
    # B, T, H, K, V, chunk, dtype, tolerance; T >= 16: the torch backend runs the chunked path
    pytest.param(1, 16, 1, 4, 4, 8, torch.float64, 1e-12, id="B1-T16-H1-K4-V4-C8-f64"),
    pytest.param(2, 37, 3, 8, 5, 8, torch.float64, 1e-12, id="B2-T37-H3-K8-V5-C8-f64"),
    pytest.param(2, 64, 2, 16, 16, 16, torch.float64, 1e-12, id="B2-T64-H2-K16-V16-C16-f64"),
    pytest.param(1, 100, 4, 16, 32, 32, torch.float32, 2e-5, id="B1-T100-H4-K16-V32-C32-f32"),
    pytest.param(3, 130, 2, 32, 8, 64, torch.float32, 2e-5, id="B3-T130-H2-K32-V8-C64-f32"),
]


def _run(kind: str, x: dict[str, torch.Tensor], grads_out, **options) -> dict[str, torch.Tensor]:
    """Forward, then backward of a random projection of (o, final state) -> outputs and the gradient of
    every input that requires one."""
    o, s = KINDS[kind].op(**x, scale=0.7, output_final_state=True, **options)
    do, ds = grads_out
    leaves = {n: t for n, t in x.items() if t.requires_grad}
    grads = torch.autograd.grad((o * do).sum() + (s * ds).sum(), list(leaves.values()))
    return {"o": o.detach(), "final_state": s.detach(), **{f"d{n}": g for n, g in zip(leaves, grads)}}


@pytest.mark.parametrize("B,T,H,K,V,chunk,dtype,tol", CASES)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_chunked_path_matches_naive(kind, B, T, H, K, V, chunk, dtype, tol):
    x = KINDS[kind].example_inputs(B, T, H, K, V, dtype)
    grads_out = (torch.randn(B, T, H, V, dtype=dtype), torch.randn(B, H, K, V, dtype=x["initial_state"].dtype))
    ref = _run(kind, x, grads_out, backend="naive")
    out = _run(kind, x, grads_out, backend="torch", chunk_size=chunk)
    assert {"o", "final_state", "dq", "dk", "dv", "dinitial_state"} <= set(ref)
    for name in ref:
        assert_close(f"{kind} {name}", ref[name], out[name], tol)


@pytest.mark.parametrize("T", [1, 5, 15, 16, 40], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_dispatcher_torch_equals_naive_backend(kind, T):
    """The `torch` backend switches between the step recurrence and chunks by length: same result."""
    x = {n: t.detach() for n, t in KINDS[kind].example_inputs(2, T, 2, 8, 8, torch.float64).items()}
    a = KINDS[kind].op(**x, scale=0.5, output_final_state=True, backend="torch", chunk_size=8)
    b = KINDS[kind].op(**x, scale=0.5, output_final_state=True, backend="naive")
    assert_close(f"{kind} o", b[0], a[0], 1e-12)
    assert_close(f"{kind} state", b[1], a[1], 1e-12)


def _positions(x: dict[str, torch.Tensor], sl: slice, state: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The inputs of positions `sl` ([B, T, ...] tensors sliced on T; per-head constants kept) from `state`."""
    return {**{n: t[:, sl] if t.dim() >= 3 else t for n, t in x.items() if n != "initial_state"}, "initial_state": state}


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_state_hand_off_equals_one_pass(kind):
    """Prefill's final state handed to the next call = processing both parts at once."""
    x = {n: t.detach() for n, t in KINDS[kind].example_inputs(1, 50, 2, 8, 4, torch.float64).items()}

    def run(sl, state):
        return KINDS[kind].op(**_positions(x, sl, state), output_final_state=True, backend="torch", chunk_size=16)

    o_all, s_all = run(slice(0, 50), None)
    o1, s1 = run(slice(0, 33), None)
    o2, s2 = run(slice(33, 50), s1)
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
        mamba2_recurrence(**args)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unknown_and_unavailable_backends(kind):
    x = {n: t.detach() for n, t in KINDS[kind].example_inputs(1, 4, 1, 4, 4).items()}
    with pytest.raises(OryxError, match="unknown backend"):
        KINDS[kind].op(**x, backend="cuda-magic")
    with pytest.raises(OryxError, match="CUDA"):
        KINDS[kind].op(**x, backend="triton")
