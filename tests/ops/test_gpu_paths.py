"""CPU checks of the logic the GPU paths are built from (the kernels themselves run in tests/gpu):
the position block mask, value-head splitting, key-width padding for fla-core, backend selection."""

from __future__ import annotations

import pytest
import torch

from oryx.errors import OryxError
from oryx.model.kinds import KINDS
from oryx.ops import flacore, mamba2_recurrence
from oryx.ops.attention import Packing, mode_counts, naive_attention
from oryx.ops.attention.flex import (
    BLOCK,
    flex_positioned_attention,
    flex_query_bucket,
    merge_values,
    position_block_mask,
    split_values,
)
from oryx.ops.attention.sdpa import positioned_attention
from oryx.ops.backend import for_long_calls
from tests.utils import assert_close


def _dense_blocks(block_mask, B: int, side: str = "kv") -> torch.Tensor:
    """[B, nq, n_kv] int: 0 skipped, 1 partial, 2 full, read back from a BlockMask's key-block lists
    (side="kv", what the forward reads) or its query-block lists (side="q", what the backward reads)."""
    nq, n_kv = block_mask.kv_indices.shape[-2:]
    dense = torch.zeros(B, nq, n_kv, dtype=torch.long)
    lists = ((1, block_mask.kv_num_blocks, block_mask.kv_indices),
             (2, block_mask.full_kv_num_blocks, block_mask.full_kv_indices))
    if side == "q":
        lists = ((1, block_mask.q_num_blocks, block_mask.q_indices),
                 (2, block_mask.full_q_num_blocks, block_mask.full_q_indices))
    for kind, counts, indices in lists:
        for b in range(B):
            for r in range(counts.shape[-1]):
                hit = indices[b, 0, r, : counts[b, 0, r]].long()
                if side == "kv":
                    dense[b, r, hit] = kind
                else:
                    dense[b, hit, r] = kind
    return dense


@pytest.mark.parametrize(
    ("B", "T", "offset", "fraction"),
    [
        pytest.param(1, 1000, 0, 0.1, id="scattered-10pct"),
        pytest.param(2, 700, 300, 0.5, id="B2-after-300"),
        pytest.param(1, 1024, 0, 1.0, id="every-position"),
        pytest.param(3, 2000, 0, 0.02, id="B3-sparse-uneven-rows"),
        pytest.param(1, 128, 0, 1.0, id="one-block"),
    ],
)
def test_position_block_mask_blocks_are_exact(B, T, offset, fraction):
    """Full blocks: every key visible to every query; skipped blocks: none; partial: the rest; every
    block list a range of consecutive blocks (FlexAttention is told so: `BLOCKS_ARE_CONTIGUOUS`).
    Queries packed as the CUDA path packs them: into FlexAttention's bucket, padding rows first."""
    S = offset + T
    mask = torch.rand(B, T) < fraction if fraction < 1 else torch.ones(B, T, dtype=torch.bool)
    most = int(mask.sum(1).max())
    q_pos = Packing.from_mask(mask, most, flex_query_bucket(most)).index + offset
    assert q_pos.shape[1] % BLOCK == 0 and bool((q_pos.diff(dim=1) >= 0).all())
    block_mask = position_block_mask(q_pos, S)
    for counts, indices in ((block_mask.kv_num_blocks, block_mask.kv_indices),
                            (block_mask.full_kv_num_blocks, block_mask.full_kv_indices),
                            (block_mask.q_num_blocks, block_mask.q_indices),
                            (block_mask.full_q_num_blocks, block_mask.full_q_indices)):
        steps = indices.diff(dim=-1)                      # consecutive up to each list's count
        within = torch.arange(1, indices.shape[-1]) < counts[..., None]
        assert bool((steps[within] == 1).all())
    blocks = _dense_blocks(block_mask, B)
    visible = torch.arange(S)[None, None, :] <= q_pos[:, :, None]                 # [B, n, S]
    n_kv = -(-S // BLOCK)
    pad = n_kv * BLOCK - S
    per_block = torch.nn.functional.pad(visible, (0, pad)).view(B, -1, BLOCK, n_kv, BLOCK)
    any_visible = per_block.any(4).any(2)
    all_visible = per_block.all(4).all(2)       # keys past S do not exist: a block holding them is never full
    assert bool(((blocks == 2) == all_visible).all())
    assert bool(((blocks == 0) == ~any_visible).all())
    # the backward walks the same blocks from the key side
    assert torch.equal(_dense_blocks(block_mask, B, side="q"), blocks)


@pytest.mark.parametrize(("V", "parts"), [pytest.param(64, 1, id="V64-kept"), pytest.param(512, 4, id="V512-split4")])
def test_split_values_is_exact(V, parts):
    """Splitting wide value heads and merging back gives the same attention."""
    B, S, H, K = 2, 40, 2, 16
    q, k = torch.randn(B, S, H, K, dtype=torch.float64), torch.randn(B, S, H, K, dtype=torch.float64)
    v = torch.randn(B, S, H, V, dtype=torch.float64)
    q_pos = torch.arange(S).expand(B, S)
    qs, ks, vs, c = split_values(q, k, v)
    assert c == parts and vs.shape[-1] == V // parts
    assert_close("o", naive_attention(q, k, v, q_pos, 0.25), merge_values(naive_attention(qs, ks, vs, q_pos, 0.25), c), 1e-12)


def test_flex_positioned_attention_forward_on_cpu():
    """The compiled FlexAttention path on CPU (forward; its backward runs on the GPU in tests/gpu)."""
    B, T, offset, H, K, V = 2, 300, 50, 2, 16, 32
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, offset + T, H, K), torch.randn(B, offset + T, H, V)
    mask = torch.rand(B, T) < 0.4
    most = mode_counts(mask)[0][1]
    packing = Packing.from_mask(mask, most, flex_query_bucket(most))            # padding rows first
    q_pos = packing.index + offset
    with torch.no_grad():
        out = flex_positioned_attention(packing.gather(q), k, v, q_pos, 0.25)
    assert_close("o", naive_attention(packing.gather(q), k, v, q_pos, 0.25), out, 1e-5)
    with pytest.raises(ValueError, match=r"is not \(pack into flex_query_bucket"):
        flex_positioned_attention(packing.gather(q)[:, 1:], k, v, q_pos[:, 1:], 0.25)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("K", [pytest.param(16, id="K16"), pytest.param(64, id="K64")])
def test_zero_padding_the_key_width_is_exact(kind, K):
    """What the fla path does on Hopper with Triton < 3.7.1: pad K to 128 with zeros, drop it after."""
    x = {n: t.detach() for n, t in KINDS[kind].example_inputs(2, 20, 2, K, 8, torch.float64).items()}
    qp, kp, sp = flacore.pad_keys(x["q"], x["k"], x["initial_state"], 128)
    assert qp.shape[-1] == kp.shape[-1] == sp.shape[-2] == 128
    o, s = KINDS[kind].op(**x, scale=0.3, output_final_state=True, backend="naive")
    op_, sp_ = KINDS[kind].op(**{**x, "q": qp, "k": kp, "initial_state": sp}, scale=0.3, output_final_state=True,
                              backend="naive")
    assert_close("o", o, op_, 1e-12)
    assert_close("state", s, sp_[:, :, :K], 1e-12)
    assert float(sp_[:, :, K:].abs().max()) == 0.0


@pytest.mark.parametrize(("K", "tile"), [(16, 16), (32, 32), (64, 64), (100, 128), (128, 128), (256, 128)])
def test_key_tile_follows_fla(K, tile):
    assert flacore.key_tile(K) == tile


def test_for_long_calls_routes_short_and_float64_calls_to_the_fallback():
    calls = []
    loader = for_long_calls(lambda: lambda q: calls.append("kernel"), lambda q: calls.append("fallback"), 16)
    run = loader()
    run(torch.zeros(1, 16, 1, 1))
    run(torch.zeros(1, 15, 1, 1))
    run(torch.zeros(1, 64, 1, 1, dtype=torch.float64))
    assert calls == ["kernel", "fallback", "fallback"]
    assert for_long_calls(lambda: None, positioned_attention, 16)() is None


def test_triton_backend_on_cpu_is_a_clear_error():
    q = torch.randn(1, 32, 1, 8)
    with pytest.raises(OryxError, match="needs a CUDA device"):
        mamba2_recurrence(q, q, q, -torch.rand(1, 32, 1), backend="triton")
