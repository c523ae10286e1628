"""Queries at given positions against all keys, causal by position, through FlexAttention.

The attention-mode queries arrive packed (`Packing`): [B, n, H, K] with their absolute positions
q_pos [B, n], non-decreasing along each row. Cut into blocks of BLOCK packed queries, block i only
needs the keys up to its last position, and every key up to its first position is visible to all of
its queries. `position_block_mask` writes exactly that as a FlexAttention `BlockMask`: key blocks left
of the first position are *full* (no mask evaluated), those up to the last are *partial* (the mask
`kv_pos <= q_pos` is evaluated), the rest are skipped. The cost is therefore about n × S / 2 whatever
the pattern: scattered positions and 128-aligned chunks both cost what their count costs (a chunk of
BLOCK positions packs into exactly one query block, so chunk-aligned masks become block-sparse masks).

FlexAttention is compiled once per process (`torch.compile`, Triton kernels on CUDA); the packed length
is rounded up to a multiple of BLOCK, so shapes repeat and recompilation stays rare.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

BLOCK = 128          # FlexAttention's block size, for queries and keys
VALUE_WIDTH = 128    # value heads wider than this are split (see `split_values`)


def position_block_mask(q_pos: torch.Tensor, kv_len: int, n_heads: int = 1):
    """FlexAttention BlockMask for queries at positions q_pos against keys 0..kv_len-1, key j visible to
    query i when j <= q_pos[b, i].

    q_pos: [B, n] non-decreasing per row, n a multiple of BLOCK. No host synchronisation.
    """
    from torch.nn.attention.flex_attention import BlockMask

    n = q_pos.shape[1]
    n_kv = -(-kv_len // BLOCK)
    first = q_pos[:, ::BLOCK]                                          # [B, nq] lowest position per block
    last = q_pos[:, BLOCK - 1 :: BLOCK]                                # [B, nq] highest
    kv_start = torch.arange(n_kv, device=q_pos.device) * BLOCK         # [n_kv]
    full = kv_start + BLOCK - 1 <= first[..., None]                    # [B, nq, n_kv] every key visible
    partial = (kv_start <= last[..., None]) & ~full                    # some keys visible

    def mask_mod(b, h, q_idx, kv_idx):
        return kv_idx <= q_pos[b, q_idx]

    def as_blocks(selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, nq, n_kv] bool -> counts [B, 1, nq], indices [B, 1, nq, n_kv] (selected ones first)."""
        counts = selected.sum(-1, dtype=torch.int32)
        order = torch.argsort((~selected).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return counts[:, None], order[:, None]

    kv_num, kv_idx = as_blocks(partial)
    full_num, full_idx = as_blocks(full)
    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=BLOCK, mask_mod=mask_mod, seq_lengths=(n, kv_len)
    )


@cache
def compiled_flex_attention():
    """flex_attention compiled once per process (Triton kernels on CUDA). Dynamic shapes: the packed
    length and the key length change from call to call, and each static shape would compile anew."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


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


def flex_positioned_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float
) -> torch.Tensor:
    """Same contract as `positioned_attention`, q_pos non-decreasing per row:
    q [B, n, H, K], k [B, S, H, K], v [B, S, H, V], q_pos [B, n] -> o [B, n, H, V]."""
    n, S = q_pos.shape[1], k.shape[1]
    pad = (-n) % BLOCK
    # padding queries sit at the last position: rows stay sorted, their outputs are dropped
    q_pos = F.pad(q_pos, (0, pad), value=S - 1)
    q = F.pad(q, (0, 0, 0, 0, 0, pad))
    q, k, v, c = split_values(q, k, v)
    o = compiled_flex_attention()(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        block_mask=position_block_mask(q_pos, S), scale=scale,
    )
    return merge_values(o.transpose(1, 2)[:, :n], c)
