"""Position-sparse attention against the masked-softmax reference; packing round trips."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from oryx.ops import sparse_attention
from oryx.ops.attention import Packing, mode_counts, naive_attention
from oryx.ops.rotary import naive_rotary
from tests.utils import assert_close

CASES = [
    # B, T, offset, H, K, V, fraction of attention positions
    pytest.param(1, 1, 0, 1, 8, 8, 1.0, id="B1-T1-all"),
    pytest.param(2, 33, 0, 2, 16, 8, 1.0, id="B2-T33-all-causal"),
    pytest.param(2, 33, 0, 2, 16, 8, 0.2, id="B2-T33-f0.2"),
    pytest.param(3, 50, 0, 4, 8, 32, 0.5, id="B3-T50-f0.5-V32"),
    pytest.param(2, 1, 40, 2, 8, 8, 1.0, id="B2-decode-step-offset40"),
    pytest.param(2, 7, 20, 2, 8, 8, 0.6, id="B2-T7-offset20-f0.6"),
]


def _reference(q, k, v, mask, offset, scale, theta=None, fill=None):
    """Every query rotated (when theta is given) and attending over every position, then the rows in
    attention mode kept, `fill` (or zeros) elsewhere."""
    B, T = mask.shape
    q_pos = torch.arange(offset, offset + T)
    if theta is not None:
        q = naive_rotary(q, q_pos, theta)
    o = naive_attention(q, k, v, q_pos.expand(B, T), scale)
    return torch.where(mask[:, :, None, None], o, torch.zeros_like(o) if fill is None else fill)


@pytest.mark.parametrize("extras", ["plain", "rope+fill"])
@pytest.mark.parametrize("backend", ["torch", "naive"])
@pytest.mark.parametrize("B,T,offset,H,K,V,frac", CASES)
def test_sparse_attention_matches_masked_full(B, T, offset, H, K, V, frac, backend, extras):
    """Also with the queries rotated inside the op (after packing) and the outputs written into `fill`."""
    S = offset + T
    q = torch.randn(B, T, H, K, dtype=torch.float64, requires_grad=True)
    k = torch.randn(B, S, H, K, dtype=torch.float64, requires_grad=True)
    v = torch.randn(B, S, H, V, dtype=torch.float64, requires_grad=True)
    fill = torch.randn(B, T, H, V, dtype=torch.float64, requires_grad=True)
    theta, fill_arg = (None, None) if extras == "plain" else (500.0, fill)
    mask = torch.rand(B, T) < frac if frac < 1 else torch.ones(B, T, dtype=torch.bool)
    mask[0, -1] = True  # at least one attention position
    do = torch.randn(B, T, H, V, dtype=torch.float64)
    leaves = (q, k, v) if fill_arg is None else (q, k, v, fill)
    ref = _reference(q, k, v, mask, offset, K**-0.5, theta, fill_arg)
    ref_grads = torch.autograd.grad((ref * do).sum(), leaves, allow_unused=True)
    out = sparse_attention(q, k, v, mask, offset, K**-0.5, backend, theta, fill_arg)
    out_grads = torch.autograd.grad((out * do).sum(), leaves, allow_unused=True)
    assert_close("o", ref, out, 1e-12)
    for name, leaf, r, o in zip(("dq", "dk", "dv", "dfill"), leaves, ref_grads, out_grads):
        # fill is unused (no gradient) when every position is in attention mode
        assert_close(name, torch.zeros_like(leaf) if r is None else r, torch.zeros_like(leaf) if o is None else o, 1e-12)


@pytest.mark.parametrize("backend", ["torch", "naive"])
@pytest.mark.parametrize("B,T,offset,H,K,V,frac", CASES)
def test_query_projection_after_packing_matches_projecting_first(B, T, offset, H, K, V, frac, backend):
    """`project` runs on the packed inputs only: the same outputs and gradients (inputs, weights, keys,
    values) as projecting every position first, rotation and fill included."""
    S, d = offset + T, 6
    x = torch.randn(B, T, d, dtype=torch.float64, requires_grad=True)
    proj = torch.nn.Linear(d, H * K, bias=False).double()
    k = torch.randn(B, S, H, K, dtype=torch.float64, requires_grad=True)
    v = torch.randn(B, S, H, V, dtype=torch.float64, requires_grad=True)
    fill = torch.randn(B, T, H, V, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(B, T) < frac if frac < 1 else torch.ones(B, T, dtype=torch.bool)
    mask[0, -1] = True
    do = torch.randn(B, T, H, V, dtype=torch.float64)
    leaves = (x, proj.weight, k, v, fill)
    first = sparse_attention(proj(x).view(B, T, H, K), k, v, mask, offset, K**-0.5, backend, 500.0, fill)
    after = sparse_attention(x, k, v, mask, offset, K**-0.5, backend, 500.0, fill, project=proj)
    assert_close("o", first, after, 1e-12)
    grads = [torch.autograd.grad((o * do).sum(), leaves, allow_unused=True) for o in (first, after)]
    for name, leaf, a, b in zip(("dx", "dW", "dk", "dv", "dfill"), leaves, *grads):
        zero = torch.zeros_like(leaf)
        assert_close(name, zero if a is None else a, zero if b is None else b, 1e-12)


@pytest.mark.parametrize("B,T,offset,H,K,V,frac", CASES[2:])
def test_packing_into_more_slots_than_queries(B, T, offset, H, K, V, frac):
    """A kernel's preferred packed length (`slots`, as FlexAttention's buckets on CUDA): the padding rows
    change nothing, forward or backward."""
    from oryx.ops.attention import _full_or_gathered
    from oryx.ops.attention.sdpa import causal_attention, positioned_attention

    padded = _full_or_gathered(causal_attention, positioned_attention, slots=lambda n: n + 7)
    S = offset + T
    q, k, v, fill = (torch.randn(B, L, H, D, dtype=torch.float64, requires_grad=True)
                     for L, D in ((T, K), (S, K), (S, V), (T, V)))
    mask = torch.rand(B, T) < frac
    mask[0, -1] = True
    counts = mode_counts(mask)[0]
    rotate = partial(naive_rotary, theta=500.0)
    ref = sparse_attention(q, k, v, mask, offset, K**-0.5, "torch", 500.0, fill)
    out = padded(q, k, v, mask, offset, K**-0.5, rotate, fill, counts, None)
    assert_close("o", ref, out, 1e-12)
    do = torch.randn_like(ref)
    for name, a, b in zip(("dq", "dk", "dv", "dfill"), torch.autograd.grad((ref * do).sum(), (q, k, v, fill)),
                          torch.autograd.grad((out * do).sum(), (q, k, v, fill))):
        assert_close(name, a, b, 1e-12)


def test_no_attention_position_gives_zeros():
    q = torch.randn(2, 5, 1, 4)
    out = sparse_attention(q, q, q, torch.zeros(2, 5, dtype=torch.bool))
    assert out.shape == (2, 5, 1, 4) and not out.any()


@pytest.mark.parametrize("first", ["first-selected", "first-not-selected", "random"])
@pytest.mark.parametrize("extra", [0, 5], ids=["exact", "5-padding-slots"])
@pytest.mark.parametrize("B,T", [(1, 1), (3, 17), (4, 64)], ids=lambda x: str(x))
def test_packing_round_trip(B, T, extra, first):
    """gather then scatter into a fill: the selected rows, fill elsewhere, and the gradients of a plain
    `where`, with padding slots (first in a row, all pointing at position 0) whether 0 is selected."""
    mask = torch.rand(B, T) < 0.3
    if first != "random":
        mask[:, 0] = first == "first-selected"
    most = int(mask.sum(1).max())
    x = torch.randn(B, T, 2, 3, dtype=torch.float64, requires_grad=True)
    fill = torch.randn(B, T, 2, 3, dtype=torch.float64, requires_grad=True)
    packing = Packing.from_mask(mask, most, most + extra)
    assert packing.index.shape[1] == most + extra
    assert (packing.valid.sum(1) == mask.sum(1)).all()
    assert torch.equal(packing.index[packing.valid], torch.nonzero(mask)[:, 1])  # in order, per row
    assert (packing.index[~packing.valid] == 0).all()
    assert (packing.valid.int().diff(dim=1) >= 0).all()  # padding first
    back = packing.scatter(packing.gather(x) * 2, fill)
    ref = torch.where(mask[..., None, None], x * 2, fill)
    assert torch.equal(back, ref)
    g = torch.randn_like(ref)
    for name, a, b in zip(("dx", "dfill"), torch.autograd.grad((back * g).sum(), (x, fill)),
                          torch.autograd.grad((ref * g).sum(), (x, fill))):
        assert torch.equal(a, b), name
    zeros = packing.scatter(packing.gather(x))
    assert torch.equal(zeros, torch.where(mask[..., None, None], x, 0))


def test_packing_needs_enough_slots():
    with pytest.raises(ValueError, match="3 packed slots cannot hold 4"):
        Packing.from_mask(torch.ones(1, 4, dtype=torch.bool), 4, 3)


@pytest.mark.parametrize(
    "k_len,mask_shape,mask_dtype",
    [(9, (2, 4), torch.bool), (10, (2, 5), torch.bool), (8, (2, 4), torch.float32)],
    ids=["keys-short", "mask-wrong-T", "mask-float"],
)
def test_bad_inputs_raise(k_len, mask_shape, mask_dtype):
    q = torch.randn(2, 4, 1, 8)
    k = torch.randn(2, k_len, 1, 8)
    with pytest.raises(ValueError):
        sparse_attention(q, k, k, torch.ones(mask_shape, dtype=mask_dtype), offset=4)


@pytest.mark.parametrize("all_positions", [False, True], ids=["some-positions", "all-positions"])
@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_projection_of_wrong_width_raises(backend, all_positions):
    """A projection whose width is not the keys' heads x head size is named, on every path."""
    k = torch.randn(2, 6, 2, 4)
    mask = torch.ones(2, 6, dtype=torch.bool) if all_positions else torch.rand(2, 6) < 0.5
    mask[0, -1] = True
    with pytest.raises(ValueError, match="gives 2 features per position; the keys' heads need 2 x 4 = 8"):
        sparse_attention(torch.randn(2, 6, 5), k, k, mask, backend=backend, project=torch.nn.Linear(5, 2))


@pytest.mark.parametrize("counts", [(0, 7), (3, 2), (-1, 2), [(0, 3)], (0.0, 3), (0, 3, 4)],
                         ids=["most-past-T", "fewest-above-most", "negative", "the-list-of-pairs", "float", "three"])
def test_impossible_counts_raise(counts):
    """counts a caller passes (mode_counts(mask)[0]) are checked for what they can be, on the host."""
    q = torch.randn(2, 6, 1, 4)
    with pytest.raises(ValueError, match=r"counts must be \(fewest, most\) attention positions"):
        sparse_attention(q, q, q, torch.rand(2, 6) < 0.5, counts=counts)


@pytest.mark.parametrize("q_shape,project", [((2, 4, 1, 8), True), ((2, 4, 8), False), ((2, 4, 2, 4), False)],
                         ids=["4d-inputs-with-projection", "3d-queries-without", "heads-differ-from-keys"])
def test_query_shape_errors_raise(q_shape, project):
    k = torch.randn(2, 4, 1, 8)
    with pytest.raises(ValueError, match="q's heads"):
        sparse_attention(torch.randn(q_shape), k, k, torch.ones(2, 4, dtype=torch.bool),
                         project=torch.nn.Linear(8, 8) if project else None)
