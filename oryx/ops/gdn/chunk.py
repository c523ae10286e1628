"""Chunked Gated DeltaNet in plain PyTorch (WY representation): the CPU fast path.

Inside a chunk, the delta rule's sequential corrections are solved at once with a unit lower-triangular
system (I + A) U = diag(β) (V − Γ K S_0), A_ij = β_i (Γ_i / Γ_j) k_i·k_j for j < i, Γ the cumulative
decay; across chunks the [K, V] state carries the past. Same maths as `naive.py`.
"""

from __future__ import annotations

import torch

from oryx.ops.chunking import from_chunks, segment_decay, to_chunks
from oryx.ops.precision import acc_dtype


def chunk_gdn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same signature and result as `naive_gdn`.

    q, k: [B, T, H, K] (L2-normalised); v: [B, T, H, V]; g, beta: [B, T, H]; initial_state: [B, H, K, V].
    """
    acc = acc_dtype(v.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    qc, kc, vc = (to_chunks(x.to(acc), chunk_size) for x in (q, k, v))      # [B,H,N,C,*]
    gc = to_chunks(g.to(acc)[..., None], chunk_size)[..., 0].cumsum(-1)    # [B,H,N,C]
    bc = to_chunks(beta.to(acc)[..., None], chunk_size)                    # [B,H,N,C,1]
    qc = qc * scale
    C = qc.shape[3]
    eye = torch.eye(C, dtype=acc, device=q.device)
    # (I + A) with A_ij = β_i exp(gc_i - gc_j) k_i.k_j, j < i
    system = eye + bc * (kc @ kc.transpose(-1, -2)) * segment_decay(gc, strict=True)
    # u = (I+A)^-1 diag(β) V and w = (I+A)^-1 diag(β Γ) K: the chunk's corrections, before the state
    rhs = torch.cat([bc * vc, bc * gc[..., None].exp() * kc], dim=-1)
    sol = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
    u, w = sol[..., :V], sol[..., V:]
    qk = qc @ kc.transpose(-1, -2) * segment_decay(gc)                     # [B,H,N,C,C]
    S = q.new_zeros(B, H, K, V, dtype=acc) if initial_state is None else initial_state.to(acc)
    outs = []
    # unbind, not indexing in the loop: the backward of x[:, :, n] writes into a zero tensor of x's full
    # size at every step, which makes the backward quadratic in the number of chunks
    for q_n, k_n, g_n, u_n, w_n, qk_n in zip(*(t.unbind(2) for t in (qc, kc, gc, u, w, qk))):
        new_v = u_n - w_n @ S                                               # β_i (v_i − recalled_i)
        outs.append((q_n * g_n[..., None].exp()) @ S + qk_n @ new_v)
        k_weighted = k_n * (g_n[..., -1:] - g_n).exp()[..., None]
        S = g_n[..., -1, None, None].exp() * S + k_weighted.transpose(-1, -2) @ new_v
    o = torch.stack(outs, dim=2)
    return from_chunks(o, T).to(v.dtype), (S if output_final_state else None)
