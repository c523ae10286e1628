"""`OryxMixer`: one layer's sequence mixer, with one or two modes on shared keys, values and output.

    shared:     k = conv_k(W_k x), v = conv_v(W_v x) (plain projections when kv_conv is false),
                y = W_O · (rmsnorm_per_head(o) · w · SiLU(W_g x))
    attention:  o_t = softmax(q_a,t · K_{<=t}ᵀ / sqrt(K)) V_{<=t}        (reads.AttentionRead)
    linear:     o_t = read of a recurrent state written by every position  (the kind's read, kinds.KINDS)

Both states absorb every position; the mode mask only decides which read produces each output.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from oryx.model.cache import LayerCache
from oryx.model.config import OryxConfig
from oryx.model.kinds import KINDS
from oryx.model.layers import CausalConv, GatedRMSNorm
from oryx.model.reads import AttentionRead
from oryx.ops import rotary
from oryx.ops.attention import check_counts, mode_counts


class OryxMixer(nn.Module):
    def __init__(self, cfg: OryxConfig, layer: int):
        super().__init__()
        self.cfg = cfg
        mixers = cfg.layer_mixers(layer)
        kind = cfg.linear_kind(layer)
        d, act = cfg.d_model, cfg.conv_act(layer)
        qk, vd = cfg.num_qk_heads * cfg.head_dim_qk, cfg.num_heads * cfg.head_dim_v
        self.k_proj = nn.Linear(d, qk, bias=False)
        self.v_proj = nn.Linear(d, vd, bias=False)
        self.k_conv = CausalConv(qk, cfg.conv_size, act, cfg.backend) if cfg.kv_conv else None
        self.v_conv = CausalConv(vd, cfg.conv_size, act, cfg.backend) if cfg.kv_conv else None
        self.g_proj = nn.Linear(d, vd, bias=False)
        self.norm = GatedRMSNorm(cfg.num_heads, cfg.head_dim_v, cfg.norm_eps, cfg.backend)
        self.o_proj = nn.Linear(vd, d, bias=False)
        # query tying only means something where a layer owns both modes
        tying = cfg.query_tying if ("attention" in mixers and kind is not None) else "separate"
        self.q_proj = nn.Linear(d, qk, bias=False) if tying != "separate" else None
        self.attn = AttentionRead(cfg, own_query=tying == "separate") if "attention" in mixers else None
        query = "own" if tying == "separate" else tying
        self.lin = KINDS[kind].read(cfg, layer, query) if kind is not None else None

    @property
    def modes(self) -> tuple[bool, ...]:
        """The modes this layer can run: (True,) attention, (False,) linear, or both."""
        return tuple(m for m, read in ((True, self.attn), (False, self.lin)) if read is not None)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        cache: LayerCache | None = None,
        offset: int = 0,
        counts: tuple[int, int] | None = None,
        gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, T, d] (normed) at positions offset..offset+T-1; mask: [B, T] bool, True = attention.

        With `cache`, both states are read and advanced by these T positions. `counts`: (fewest, most)
        attention positions in a row when the caller has read them (`mode_counts`; the model reads
        every layer's at once). gate: [B, T], a learned router's straight-through weight (training):
        its gradient becomes <dL/do, o_att - o_lin> (oryx.routing.router). Returns [B, T, d].
        """
        cfg = self.cfg
        B, T, _ = x.shape
        conv = cache.conv if cache is not None else {}
        k, v = self.k_proj(x), self.v_proj(x)
        if self.k_conv is not None:
            k, conv["k"] = self.k_conv(k, conv.get("k"))
            v, conv["v"] = self.v_conv(v, conv.get("v"))
        k = k.view(B, T, cfg.num_qk_heads, cfg.head_dim_qk)
        v = v.view(B, T, cfg.num_heads, cfg.head_dim_v)
        q_shared = self.q_proj(x) if self.q_proj is not None else None
        # which paths run is decided on the host: a device-to-host read (a sync, which stalls the launch
        # queue) unless the caller passed the counts
        counts = mode_counts(mask)[0] if counts is None else check_counts(counts, T)
        o_lin = o_att = None

        # linear mode: runs whenever some position reads it, or a cache must absorb these positions
        if self.lin is not None and (cache is not None or counts[0] < T or gate is not None):
            state = cache.state if cache is not None else None
            o_lin, state, conv["q"] = self.lin(x, q_shared, k, v, state, conv.get("q"), cache is not None)
            if cache is not None:
                cache.state = state

        # attention mode: the KV cache takes every position; queries only at attention positions (with
        # neither, the keys are not even rotated)
        if self.attn is not None and (cache is not None or counts[1] > 0):
            keys = k
            if cfg.position_encoding == "rope":
                keys = rotary(k, torch.arange(offset, offset + T, device=x.device), cfg.rope_theta, cfg.backend)
            values = v.view(B, T, cfg.num_qk_heads, -1)  # value heads grouped under their qk head
            if cache is not None:
                keys, values = cache.append_kv(keys, values)
            if counts[1] > 0:
                # attention outputs land in the linear outputs (where the mask is False they stay)
                o_att = self.attn(x, q_shared, keys, values, mask, offset, o_lin, counts)

        o = o_lin if o_att is None else o_att
        if gate is not None and o_att is not None:  # zero in value: the forward stays the hard choice
            o = o + (gate - gate.detach()).to(o.dtype)[..., None, None] * (o_att - o_lin)
        return self.o_proj(self.norm(o, self.g_proj(x)))
