"""Position-sparse attention against the masked-softmax reference; packing round trips."""

from __future__ import annotations

import pytest
import torch

from oryx.ops import sparse_attention
from oryx.ops.attention import Packing, naive_attention
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


def _reference(q, k, v, mask, offset, scale):
    """Masked full attention over every position, then keep the rows in attention mode."""
    B, T = mask.shape
    q_pos = torch.arange(offset, offset + T).expand(B, T)
    o = naive_attention(q, k, v, q_pos, scale)
    return torch.where(mask[:, :, None, None], o, torch.zeros_like(o))


@pytest.mark.parametrize("backend", ["torch", "naive"])
@pytest.mark.parametrize("B,T,offset,H,K,V,frac", CASES)
def test_sparse_attention_matches_masked_full(B, T, offset, H, K, V, frac, backend):
    S = offset + T
    q = torch.randn(B, T, H, K, dtype=torch.float64, requires_grad=True)
    k = torch.randn(B, S, H, K, dtype=torch.float64, requires_grad=True)
    v = torch.randn(B, S, H, V, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(B, T) < frac if frac < 1 else torch.ones(B, T, dtype=torch.bool)
    mask[0, -1] = True  # at least one attention position
    do = torch.randn(B, T, H, V, dtype=torch.float64)
    ref = _reference(q, k, v, mask, offset, K**-0.5)
    ref_grads = torch.autograd.grad((ref * do).sum(), (q, k, v))
    out = sparse_attention(q, k, v, mask, offset, K**-0.5, backend)
    out_grads = torch.autograd.grad((out * do).sum(), (q, k, v))
    assert_close("o", ref, out, 1e-12)
    for name, r, o in zip(("dq", "dk", "dv"), ref_grads, out_grads):
        assert_close(name, r, o, 1e-12)


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
