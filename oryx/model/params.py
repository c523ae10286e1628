"""Counting parameters: totals, per component, and the tied fraction (the share of parameters both modes use)."""

from __future__ import annotations

from collections import Counter

import torch.nn as nn


def component(name: str) -> str:
    """The component a parameter belongs to, from its name in the state dict.

    'attention-specific' / 'linear-specific' hold the parameters one mode uses alone (the untied ones);
    'mixer-shared' the keys, values, gate, norm and output projection both modes read; 'router-specific'
    the learned router's (it exists only to choose between the two modes).
    """
    if name.startswith(("embed.", "lm_head.")):
        return "embedding"
    if name.startswith("router."):
        return "router-specific"
    if ".mixer.attn." in name:
        return "attention-specific"
    if ".mixer.lin." in name:
        return "linear-specific"
    if ".mixer." in name:
        return "mixer-shared"
    if ".mlp." in name:
        return "mlp"
    return "norms"


def count_parameters(model: nn.Module) -> dict[str, int | float | dict[str, int]]:
    """{'total', 'mixer_specific', 'tied_fraction', 'components': {component: count}}.

    mixer_specific counts the parameters that only one of a layer's two modes uses, in layers that own
    two mixers (in a single-mixer layer nothing is shared or specific, so it counts 0 there), and the
    learned router's (a model has one only when some layer owns two mixers);
    tied_fraction = 1 - mixer_specific / total.
    """
    per_component: Counter[str] = Counter()
    specific = 0
    dual = set(model.config.dual_layers)
    for name, p in model.named_parameters():
        comp = component(name)
        per_component[comp] += p.numel()
        if comp == "router-specific" or (comp.endswith("-specific") and int(name.split(".")[1]) in dual):
            specific += p.numel()
    total = sum(per_component.values())
    return {
        "total": total,
        "mixer_specific": specific,
        "tied_fraction": 1.0 - specific / total,
        "components": dict(per_component),
    }


def state_bytes(config, dtype_bytes: int = 2) -> dict[str, int]:
    """Inference state of a config: what a decoding cache holds (matches `OryxCache.state_bytes`).

    kv_cache_per_position: keys and values of every attention-owning layer, for one position;
    recurrent_per_sequence: the float32 [H, K, V] states of the linear layers;
    conv_per_sequence: the last conv_size-1 inputs of each short conv.
    `dtype_bytes` is the size of the activations (2 for bf16).
    """
    kv = recurrent = conv = 0
    qk = config.num_qk_heads * config.head_dim_qk
    vd = config.num_heads * config.head_dim_v
    for layer in range(config.n_layers):
        owned = config.layer_mixers(layer)
        conv_channels = qk + vd if config.kv_conv else 0
        if "attention" in owned:
            kv += (qk + vd) * dtype_bytes
        if config.linear_kind(layer) is not None:
            recurrent += config.num_heads * config.head_dim_qk * config.head_dim_v * 4
            conv_channels += qk  # the linear-mode query's conv
        conv += (config.conv_size - 1) * conv_channels * dtype_bytes
    return {"kv_cache_per_position": kv, "recurrent_per_sequence": recurrent, "conv_per_sequence": conv}
