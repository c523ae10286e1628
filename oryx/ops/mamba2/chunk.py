"""Chunked Mamba-2 (scalar-decay) recurrence in plain PyTorch: the CPU fast path.

Inside a chunk of C positions the output is a masked, decay-weighted attention (quadratic in C);
across chunks a [K, V] state carries the past (linear in T). Same maths as `naive.py`.
"""

from __future__ import annotations

import torch

from oryx.ops.chunking import from_chunks, segment_decay, to_chunks
from oryx.ops.precision import acc_dtype


def chunk_mamba2(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same signature and result as `naive_mamba2`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H]; initial_state: [B, H, K, V].
    """
    acc = acc_dtype(v.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    qc, kc, vc = (to_chunks(x.to(acc), chunk_size) for x in (q, k, v))      # [B,H,N,C,*]
    gc = to_chunks(g.to(acc)[..., None], chunk_size)[..., 0].cumsum(-1)    # [B,H,N,C]
    qc = qc * scale
    # intra-chunk: o_i = sum_{j<=i} exp(gc_i - gc_j) (q_i . k_j) v_j
    o = (qc @ kc.transpose(-1, -2) * segment_decay(gc)) @ vc                # [B,H,N,C,V]
    # inter-chunk: carry the state; contributions of the state to each position decay by exp(gc_i)
    S = q.new_zeros(B, H, K, V, dtype=acc) if initial_state is None else initial_state.to(acc)
    inter = []
    # unbind, not indexing in the loop: the backward of x[:, :, n] writes into a zero tensor of x's full
    # size at every step, which makes the backward quadratic in the number of chunks
    for q_n, k_n, v_n, g_n in zip(*(t.unbind(2) for t in (qc, kc, vc, gc))):   # [B,H,C,*], g_n [B,H,C]
        inter.append((q_n * g_n[..., None].exp()) @ S)
        k_weighted = k_n * (g_n[..., -1:] - g_n).exp()[..., None]
        S = g_n[..., -1, None, None].exp() * S + k_weighted.transpose(-1, -2) @ v_n
    o = o + torch.stack(inter, dim=2)
    return from_chunks(o, T).to(v.dtype), (S if output_final_state else None)
