"""The linear kinds: every recurrence a layer can own beside attention, each defined once, here.

A kind is what the rest of the toolkit needs to know of a recurrence: its mixer name in configs, the
read that runs it in linear mode (`oryx.model.reads`), its op and that op's example inputs
(`oryx.ops.<kind>`), the activation after the layer's short convs, and the head layout of its presets.
Config validation (`OryxConfig.mixers`), the preset families (`oryx.presets.FAMILIES`: `oryx-<kind>`
and `<kind>` for each), `oryx info`, the benchmarks and the tests all read `KINDS`; adding a mixer is a
new op folder, a new read class and one entry below (docs/architecture.md, "How to add a mixer").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from oryx.model import reads
from oryx.ops import gdn, mamba2, retnet

ATTENTION = "attention"  # the one softmax mixer; every other mixer name is a linear kind


@dataclass(frozen=True)
class LinearKind:
    name: str                              # the mixer name in configs and families ("mamba2")
    title: str                             # for people: tables, help, docs ("Mamba-2")
    summary: str                           # one line: the recurrence (`oryx info --kinds`)
    read: type[reads.LinearRead]           # linear mode of a layer (contract: reads.LinearRead)
    op: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
    # ^ the recurrence: op(q, k, v, <gates>, scale, initial_state, output_final_state, backend, chunk_size)
    example_inputs: Callable[..., dict[str, torch.Tensor]]
    # ^ (B, T, H, K, V, dtype, device) -> fresh random keyword inputs of `op` (tests, benchmarks)
    conv_activation: str | None            # after the short convs on k, v, q under conv_activation=auto
    layout: Callable[[int, int, int], dict[str, int]]
    # ^ head layout of its presets: (d_model, K, V of the preset size) -> num_qk_heads, head_dim_qk,
    #   num_heads, head_dim_v (presets then solve the SwiGLU width to match parameter counts)


def grouped_value_heads(d_model: int, head_dim_qk: int, head_dim_v: int) -> dict[str, int]:
    """Mamba-2's layout: expand 2 into value heads of size V, grouped under d/256 query/key heads of
    size K (ngroups)."""
    return dict(num_qk_heads=max(1, d_model // 256), head_dim_qk=head_dim_qk,
                num_heads=2 * d_model // head_dim_v, head_dim_v=head_dim_v)


def wide_value_heads(d_model: int, head_dim_qk: int, head_dim_v: int) -> dict[str, int]:
    """Gated DeltaNet's layout: the same query/key heads, two value heads each, expand 2 (value heads of
    d/groups)."""
    groups = max(1, d_model // 256)
    return dict(num_qk_heads=groups, head_dim_qk=head_dim_qk, num_heads=2 * groups, head_dim_v=d_model // groups)


KINDS: dict[str, LinearKind] = {kind.name: kind for kind in (
    LinearKind(
        name="mamba2", title="Mamba-2", summary="scalar decay per head and position, S_t = exp(dt_t A) S_t-1 + k_t (dt_t v_t)ᵀ",
        read=reads.Mamba2Read, op=mamba2.mamba2_recurrence, example_inputs=mamba2.example_inputs,
        conv_activation=None, layout=grouped_value_heads,
    ),
    LinearKind(
        name="gdn", title="Gated DeltaNet", summary="gated delta rule, S_t = α_t (I − β_t k_t k_tᵀ) S_t-1 + β_t k_t v_tᵀ",
        read=reads.GDNRead, op=gdn.gdn_recurrence, example_inputs=gdn.example_inputs,
        conv_activation="silu", layout=wide_value_heads,
    ),
    LinearKind(
        name="retnet", title="RetNet retention", summary="constant decay per head, S_t = γ_h S_t-1 + k_t v_tᵀ",
        read=reads.RetNetRead, op=retnet.retnet_recurrence, example_inputs=retnet.example_inputs,
        conv_activation=None, layout=grouped_value_heads,
    ),
)}

MIXERS: tuple[str, ...] = (ATTENTION, *KINDS)  # every mixer name a config accepts
