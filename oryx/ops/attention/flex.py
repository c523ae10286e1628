"""Queries at given positions against all keys, causal by position, through FlexAttention.

The attention-mode queries arrive packed (`Packing`): [B, n, H, K] with their absolute positions
q_pos [B, n], non-decreasing along each row. Cut into blocks of BLOCK packed queries, block i only
needs the keys up to its last position, and every key up to its first position is visible to all of
its queries. `position_block_mask` writes exactly that as a FlexAttention `BlockMask`: key blocks left
of the first position are *full* (no mask evaluated), those up to the last are *partial* (the mask
`kv_pos <= q_pos` is evaluated), the rest are skipped. The cost is therefore about n × S / 2 whatever
the pattern: scattered positions and 128-aligned chunks both cost what their count costs (a chunk of
BLOCK positions packs into exactly one query block, so chunk-aligned masks become block-sparse masks).

FlexAttention is compiled with static shapes (`torch.compile`, Triton kernels on CUDA): on the H200
at N = 32768 and 10% scattered positions its forward+backward took 5.0 ms compiled static and 7.1 ms
compiled with dynamic shapes (benchmarks/results/mixer-parts-h200.md). So that shapes repeat, the
packed length and the key length are rounded up to buckets (`bucket`: a multiple of BLOCK, and from
2048 on at most 1/16 more queries and 1/8 more keys). The queries arrive packed into their bucket
(`Packing`, padding rows first at the call's first position: on a fresh sequence they see one key; at
the last position they would see all: 51 padding rows with 3277 queries at N = 32768, 10% scattered,
are 3% more work; their outputs are dropped after the scatter); padding keys lie past every query's
position (never visible; their blocks are skipped). One compilation per bucket pair, batch size, head layout, dtype and grad mode, a few seconds
each. Past the process's recompile limit (raised here to RECOMPILE_LIMIT) torch.compile falls back to
eager FlexAttention, which materialises the scores: slow, and large at long lengths.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

BLOCK = 128          # FlexAttention's block size, for queries and keys (the block mask's)
# The forward kernel's own tiles, smaller than the mask's blocks (which FlexAttention allows when they
# divide them): at N = 32768, 10% scattered queries, 16 heads of 128 on the H200 the forward took
# 1.34 ms against 1.55 ms with the default 128 x 64 tiles and 8 warps, forward+backward 4.88 against
# 5.06 ms (benchmarks/results/mixer-parts-h200.md, probe 3). Smaller query tiles make twice the
# programs, so the costliest ones (the latest queries, which see the most keys) leave less of a tail.
FORWARD_TILES = {"fwd_BLOCK_M": 64, "fwd_BLOCK_N": 64, "fwd_num_warps": 4, "fwd_num_stages": 3}
# The forward reads its tiles through the Tensor Memory Accelerator (Hopper; FlexAttention turns it off
# where it cannot). Same point, with the tiles above and MASK_HINTS: forward 1.18-1.20 against 1.24-1.29
# ms, forward+backward 4.57-4.61 against 4.62-4.70 (probe 5, two runs). For both passes (`USE_TMA`)
# the backward lost more than the forward gained: 4.87 against 4.60 ms (probe 4).
FORWARD_TMA = {"fwd_USE_TMA": True}
# What `position_block_mask` guarantees, told to the kernels: every block list is a range of consecutive
# blocks, so the next block is the next index (nothing to load). With the forward tiles, same point:
# 4.62-4.63 against 4.88 ms forward+backward (probe 5, two runs). The hint that no row is fully masked,
# also true here, gained nothing (4.90-4.93); max-autotune over inductor's tiles chose the forward tiles
# above and FlexAttention's default backward tiles (probe 4: benchmarks/results/flex-autotune-h200-probe4.txt).
MASK_HINTS = {"BLOCKS_ARE_CONTIGUOUS": True}
VALUE_WIDTH = 128    # value heads wider than this are split (see `split_values`)


def position_block_mask(q_pos: torch.Tensor, kv_len: int):
    """FlexAttention BlockMask for queries at positions q_pos against keys 0..kv_len-1, key j visible to
    query i when j <= q_pos[b, i].

    q_pos: [B, n] non-decreasing per row, n a multiple of BLOCK. No host synchronisation.

    Because positions are sorted, every block list is a range, written with arange arithmetic rather
    than through `BlockMask.from_kv_blocks` (whose dense transpose and argsorts cost about 1.7 ms at
    N = 32768 on the H200, as much as the forward kernel): query block i sees key blocks [0, a_i) in
    full and [a_i, b_i] in part, with a_i = (first_i + 1) // BLOCK and b_i = last_i // BLOCK, both
    non-decreasing in i; so key block j is seen in full by query blocks [c_j, nq) and in part by
    [d_j, c_j), c_j and d_j found by `searchsorted`.
    """
    from torch.nn.attention.flex_attention import BlockMask

    B, n = q_pos.shape
    nq, n_kv = n // BLOCK, -(-kv_len // BLOCK)
    a = (q_pos[:, ::BLOCK] + 1) // BLOCK                               # [B, nq] full key blocks
    b = q_pos[:, BLOCK - 1 :: BLOCK] // BLOCK                          # [B, nq] last partial one
    cols = torch.arange(n_kv, device=q_pos.device)
    j = cols.expand(B, n_kv).contiguous()
    c = torch.searchsorted(a.contiguous(), j, right=True)             # [B, n_kv] first i with a_i > j
    d = torch.searchsorted(b.contiguous(), j)                         # [B, n_kv] first i with b_i >= j

    def ranges(start: torch.Tensor, stop: torch.Tensor, size: int, width: int):
        """Rows of [start, stop) -> counts [B, 1, R] int32, indices [B, 1, R, width] int32 (clamped)."""
        counts = (stop - start).clamp(min=0).to(torch.int32)
        idx = (start[..., None] + torch.arange(width, device=q_pos.device)).clamp(max=size - 1)
        return counts[:, None], idx.to(torch.int32)[:, None]

    kv_num, kv_idx = ranges(a, b + 1, n_kv, n_kv)
    full_kv_num, full_kv_idx = ranges(torch.zeros_like(a), a, n_kv, n_kv)
    q_num, q_idx = ranges(d, c, nq, nq)
    full_q_num, full_q_idx = ranges(c, torch.full_like(c, nq), nq, nq)

    def mask_mod(b, h, q_idx, kv_idx):
        return kv_idx <= q_pos[b, q_idx]

    return BlockMask(
        seq_lengths=(n, kv_len), kv_num_blocks=kv_num, kv_indices=kv_idx, full_kv_num_blocks=full_kv_num,
        full_kv_indices=full_kv_idx, q_num_blocks=q_num, q_indices=q_idx, full_q_num_blocks=full_q_num,
        full_q_indices=full_q_idx, BLOCK_SIZE=(BLOCK, BLOCK), mask_mod=mask_mod,
    )


# torch.compile keeps 8 compiled versions of a function by default and then silently falls back to
# eager FlexAttention (measured 54 ms instead of 1.5 ms forward at N = 32768): one version per bucket
# of shapes is the plan here, so the limit is raised for the process
RECOMPILE_LIMIT = 256


def bucket(length: int, per_octave: int) -> int:
    """`length` rounded up to a multiple of BLOCK and of 2^(bits(length) - log2(per_octave) - 1): at
    most `per_octave` sizes per doubling, and at most 1/per_octave of padding once that step exceeds
    BLOCK (below, the padding is under BLOCK positions)."""
    step = max(BLOCK, 1 << max(length.bit_length() - per_octave.bit_length(), 0))
    return -(-length // step) * step


def flex_query_bucket(n: int) -> int:
    """The packed query length `flex_positioned_attention` takes for n queries (they are packed into it)."""
    return bucket(n, 16)


@cache
def compiled_flex_attention():
    """flex_attention compiled with static shapes (see the module docstring for why)."""
    import torch._dynamo
    from torch.nn.attention.flex_attention import flex_attention

    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)
    return torch.compile(flex_attention, dynamic=False)


def split_values(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, width: int = VALUE_WIDTH):
    """Value heads wider than `width` -> more heads of `width` each, q and k repeated to match; every
    tensor with unit stride along its last dim.

    Attention kernels keep a [block, V] accumulator per query block, so V = 512 (the grouped Mamba-2
    layout: 8 value heads of 64 per qk head) does not fit; splitting V into c parts recomputes the
    scores c times but keeps every kernel on its fast path.
    q [B, L, H, K], k [B, S, H, K], v [B, S, H, V] -> q, k [B, *, H*c, K], v [B, S, H*c, V/c], c.
    """
    # fused kernels need unit stride along the head dim; the mixer's values come out of a conv
    # transposed ([B, T, C] with stride T along C), which SDPA would silently send to its unfused path
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    V = v.shape[-1]
    c = -(-V // width) if width < V else 1
    if c == 1 or V % c:
        return q, k, v, 1
    B, S, H, _ = v.shape
    return q.repeat_interleave(c, 2), k.repeat_interleave(c, 2), v.reshape(B, S, H * c, V // c), c


def merge_values(o: torch.Tensor, c: int) -> torch.Tensor:
    """Undo `split_values` on an output [B, L, H*c, V/c] -> [B, L, H, V]."""
    return o if c == 1 else o.reshape(*o.shape[:2], o.shape[2] // c, -1)


def kernel_options(q: torch.Tensor) -> dict:
    """MASK_HINTS always; FORWARD_TILES and FORWARD_TMA where they were measured: CUDA, 16-bit, heads of
    at most 128 (wider heads or float32 need more shared memory per tile than was tried; FlexAttention's
    default tiles stay there)."""
    measured = q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and q.shape[-1] <= 128
    return {**MASK_HINTS, **(FORWARD_TILES | FORWARD_TMA if measured else {})}


def flex_positioned_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float
) -> torch.Tensor:
    """Same contract as `positioned_attention`, q_pos non-decreasing per row, n a bucketed length
    (`flex_query_bucket(n) == n`, as `Packing.from_mask(mask, most, flex_query_bucket(most))` packs):
    q [B, n, H, K], k [B, S, H, K], v [B, S, H, V], q_pos [B, n] -> o [B, n, H, V]."""
    n, S = q_pos.shape[1], k.shape[1]
    if flex_query_bucket(n) != n:
        raise ValueError(f"flex_positioned_attention takes queries packed into a bucketed length: {n} is not "
                         f"(pack into flex_query_bucket({n}) = {flex_query_bucket(n)} rows)")
    S_pad = bucket(S, 8) - S
    if S_pad:  # keys past position S - 1: no query sees them
        k, v = F.pad(k, (0, 0, 0, 0, 0, S_pad)), F.pad(v, (0, 0, 0, 0, 0, S_pad))
    q, k, v, c = split_values(q, k, v)
    o = compiled_flex_attention()(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        block_mask=position_block_mask(q_pos, S + S_pad), scale=scale,
        kernel_options=kernel_options(q),
    )
    return merge_values(o.transpose(1, 2), c)
