"""The mixer-specific parts of a layer: how each mode reads the shared keys and values.

Everything in these modules is used by one mode only; in a layer that owns both mixers they are the
untied parameters (`count_parameters` counts them as mixer-specific). The shared k, v, gate and output
projection live in `mixer.py`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from oryx.model.layers import CausalConv
from oryx.ops import gdn_recurrence, mamba2_recurrence, sparse_attention
from oryx.ops.precision import upcast
from oryx.ops.retnet import retnet_recurrence

if TYPE_CHECKING:  # the config imports the kind registry, which imports these reads
    from oryx.model.config import OryxConfig


class AttentionRead(nn.Module):
    """Attention mode: its own query (unless tied) and softmax attention over every key so far."""

    def __init__(self, cfg: OryxConfig, own_query: bool):
        super().__init__()
        self.cfg = cfg
        qk = cfg.num_qk_heads * cfg.head_dim_qk
        self.q_proj = nn.Linear(cfg.d_model, qk, bias=False) if own_query else None

    def forward(
        self,
        x: torch.Tensor,
        q_shared: torch.Tensor | None,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        offset: int,
        fill: torch.Tensor | None = None,
        counts: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """x: [B, T, d]; keys [B, S, Hk, K] (rotated), values [B, S, Hk, G*V]; mask [B, T] (True =
        attention); fill [B, T, H, V] or None; counts (fewest, most) attention positions per row ->
        o [B, T, H, V], `fill` (or zeros) where mask is False.

        An own query is projected inside `sparse_attention` after packing, and every query is rotated
        there: only attention positions pay."""
        cfg = self.cfg
        B, T, _ = x.shape
        Hk = cfg.num_qk_heads
        q, project = (x, self.q_proj) if self.q_proj is not None else (q_shared.view(B, T, Hk, -1), None)
        theta = cfg.rope_theta if cfg.position_encoding == "rope" else None
        o = sparse_attention(
            q, keys, values, mask, offset, cfg.head_dim_qk**-0.5, cfg.backend, theta,
            None if fill is None else fill.reshape(B, T, Hk, -1), counts, project,
        )
        return o.reshape(B, T, cfg.num_heads, cfg.head_dim_v)


class LinearRead(nn.Module):
    """Linear mode: a query (own, shared, or shared + low-rank delta) through a short conv, reading a
    recurrent state that every position writes. Subclasses add the gates of one recurrence.

    The contract of a subclass (one per linear kind, registered in `oryx.model.kinds`):
        __init__(cfg, layer, query)   call super().__init__ first (the query and its conv), then create
                                      the kind's own parameters (all of them mixer-specific)
        forward(x, q_shared, k, v, state, conv_state, want_state) -> (o, state, conv_state)
            x [B, T, d]; q_shared [B, T, Hk*K] or None; k [B, T, Hk, K] (shared, after its conv);
            v [B, T, H, V]; state [B, H, K, V] float32 or None (zeros); conv_state of the query conv;
            -> o [B, T, H, V], the new state when `want_state` (a cache is kept) else None, and the
            new query conv state (`self.query` returns it). The state must absorb every position.
    """

    def __init__(self, cfg: OryxConfig, layer: int, query: str):
        super().__init__()
        self.cfg = cfg
        qk = cfg.num_qk_heads * cfg.head_dim_qk
        self.q_proj = nn.Linear(cfg.d_model, qk, bias=False) if query == "own" else None
        if query == "lowrank":
            self.q_down = nn.Linear(cfg.d_model, cfg.query_rank, bias=False)
            self.q_up = nn.Linear(cfg.query_rank, qk, bias=False)
        self.q_conv = CausalConv(qk, cfg.conv_size, cfg.conv_act(layer), cfg.backend)

    def query(
        self, x: torch.Tensor, q_shared: torch.Tensor | None, conv_state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> q [B, T, H, K] (repeated over the value heads of each qk head), new conv state."""
        q = self.q_proj(x) if self.q_proj is not None else q_shared
        if hasattr(self, "q_up"):
            q = q + self.q_up(self.q_down(x))
        q, conv_state = self.q_conv(q, conv_state)
        return self.expand_heads(q), conv_state

    def expand_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, Hk*K] -> [B, T, H, K]: each qk head serves num_heads/num_qk_heads value heads."""
        cfg = self.cfg
        t = t.view(*t.shape[:2], cfg.num_qk_heads, cfg.head_dim_qk)
        group = cfg.num_heads // cfg.num_qk_heads
        return t if group == 1 else t.repeat_interleave(group, dim=2)

    @staticmethod
    def _init_dt_bias(num_heads: int, dt_min: float = 1e-3, dt_max: float = 1e-1) -> torch.Tensor:
        """Inverse softplus of step sizes drawn log-uniformly in [dt_min, dt_max] (Mamba's init)."""
        dt = torch.exp(torch.empty(num_heads).uniform_(math.log(dt_min), math.log(dt_max)))
        return dt + torch.log(-torch.expm1(-dt))


class Mamba2Read(LinearRead):
    """S_t = exp(dt_t A) S_{t-1} + k_t (dt_t v_t)ᵀ, o_t = S_tᵀ q_t + D v_t (scalar decay per head)."""

    def __init__(self, cfg: OryxConfig, layer: int, query: str):
        super().__init__(cfg, layer, query)
        H = cfg.num_heads
        self.dt_proj = nn.Linear(cfg.d_model, H, bias=False)
        self.dt_bias = nn.Parameter(self._init_dt_bias(H))
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
        self.D = nn.Parameter(torch.ones(H))

    def forward(self, x, q_shared, k, v, state, conv_state, want_state):
        """x [B, T, d]; k [B, T, Hk, K]; v [B, T, H, V]; state [B, H, K, V] or None.
        -> o [B, T, H, V], new state (or None), new q conv state."""
        q, conv_state = self.query(x, q_shared, conv_state)
        dt = F.softplus(upcast(self.dt_proj(x)) + self.dt_bias)                  # [B, T, H]
        g = -self.A_log.to(dt.dtype).exp() * dt
        o, state = mamba2_recurrence(
            q, self.expand_heads(k.flatten(2)), v * dt[..., None].to(v.dtype), g, 1.0,
            state, want_state, self.cfg.backend, self.cfg.chunk_size,
        )
        return o + self.D[:, None].to(o.dtype) * v, state, conv_state


class GDNRead(LinearRead):
    """Gated delta rule with L2-normalised q, k: S_t = α_t (I − β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ."""

    def __init__(self, cfg: OryxConfig, layer: int, query: str):
        super().__init__(cfg, layer, query)
        H = cfg.num_heads
        self.a_proj = nn.Linear(cfg.d_model, H, bias=False)
        self.b_proj = nn.Linear(cfg.d_model, H, bias=False)
        self.dt_bias = nn.Parameter(self._init_dt_bias(H))
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())

    def forward(self, x, q_shared, k, v, state, conv_state, want_state):
        """Same contract as `Mamba2Read.forward`."""
        q, conv_state = self.query(x, q_shared, conv_state)
        dt = F.softplus(upcast(self.a_proj(x)) + self.dt_bias)                   # [B, T, H]
        g = -self.A_log.to(dt.dtype).exp() * dt
        beta = torch.sigmoid(upcast(self.b_proj(x)))
        q, k = F.normalize(upcast(q), dim=-1), F.normalize(upcast(self.expand_heads(k.flatten(2))), dim=-1)
        o, state = gdn_recurrence(
            q.to(v.dtype), k.to(v.dtype), v, g, beta, self.cfg.head_dim_qk**-0.5,
            state, want_state, self.cfg.backend, self.cfg.chunk_size,
        )
        return o, state, conv_state


class RetNetRead(LinearRead):
    """Retention (RetNet): S_t = γ_h S_{t-1} + k_t v_tᵀ, o_t = S_tᵀ q_t / sqrt(K), with a constant decay
    γ_h per head that is not learned (no parameters beyond the query). The layer's shared gated RMSNorm
    plays RetNet's GroupNorm and swish gate."""

    def forward(self, x, q_shared, k, v, state, conv_state, want_state):
        """Same contract as `Mamba2Read.forward`."""
        q, conv_state = self.query(x, q_shared, conv_state)
        o, state = retnet_recurrence(
            q, self.expand_heads(k.flatten(2)), v, self.log_decays(self.cfg.num_heads, x.device),
            self.cfg.head_dim_qk**-0.5, state, want_state, self.cfg.backend, self.cfg.chunk_size,
        )
        return o, state, conv_state

    @staticmethod
    def log_decays(num_heads: int, device: torch.device) -> torch.Tensor:
        """log γ_h [H] float32: RetNet's γ = 1 − 2^-(5..12), one per head for its 8 heads; other head
        counts spread the exponents evenly over the same range (the same memory lengths at any width)."""
        exponents = 5.0 + 7.0 * torch.arange(num_heads, device=device) / max(num_heads - 1, 1)
        return torch.log1p(-torch.exp2(-exponents))
