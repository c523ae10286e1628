"""Position-sparse attention against the masked-softmax reference; packing round trips."""

from __future__ import annotations

import pytest
import torch

from oryx.ops import sparse_attention
from oryx.ops.attention import Packing, naive_attention
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


def test_no_attention_position_gives_zeros():
    q = torch.randn(2, 5, 1, 4)
    out = sparse_attention(q, q, q, torch.zeros(2, 5, dtype=torch.bool))
    assert out.shape == (2, 5, 1, 4) and not out.any()


@pytest.mark.parametrize("B,T", [(1, 1), (3, 17), (4, 64)], ids=lambda x: str(x))
def test_packing_round_trip(B, T):
    mask = torch.rand(B, T) < 0.3
    x = torch.randn(B, T, 3)
    packing = Packing.from_mask(mask)
    assert packing.index.shape[1] == int(mask.sum(1).max())
    assert (packing.valid.sum(1) == mask.sum(1)).all()
    back = packing.scatter(packing.gather(x))
    assert torch.equal(back, torch.where(mask[..., None], x, torch.zeros_like(x)))


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
