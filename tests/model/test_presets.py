"""Presets: names, parameter matching within each size, tied fraction, interleave, errors."""

from __future__ import annotations

import pytest

from oryx import OryxError, OryxForCausalLM, count_parameters, presets
from oryx.model.kinds import KINDS


def _counts(name):
    import torch

    with torch.device("meta"):
        return count_parameters(OryxForCausalLM(presets.get(name)))


def test_names_cover_every_family_and_size():
    assert len(presets.names()) == len(presets.FAMILIES) * len(presets.SIZES)
    assert "oryx-mamba2-1.4b" in presets.names() and "hybrid-mamba2-tiny" in presets.names()


@pytest.mark.parametrize("size", list(presets.SIZES))
def test_families_are_parameter_matched_within_5_percent(size):
    totals = {f: _counts(f"{f}-{size}")["total"] for f in presets.FAMILIES}
    assert max(totals.values()) / min(totals.values()) <= 1.05, totals


@pytest.mark.parametrize("name", [n for n in presets.names() if n.startswith("oryx-")])
def test_oryx_presets_tie_at_least_90_percent(name):
    counts = _counts(name)
    assert counts["tied_fraction"] >= 0.90
    assert counts["mixer_specific"] > 0


def test_baselines_have_no_mixer_specific_parameters():
    assert _counts("transformer-small")["mixer_specific"] == 0
    assert _counts("mamba2-small")["tied_fraction"] == 1.0


def test_tiny_is_a_few_hundred_thousand_parameters():
    assert 100_000 <= _counts("oryx-mamba2-tiny")["total"] <= 900_000


@pytest.mark.parametrize("size", ["small", "125m"])
def test_hybrid_has_one_attention_layer_in_four(size):
    cfg = presets.get(f"hybrid-mamba2-{size}")
    kinds = [cfg.layer_mixers(i) for i in range(cfg.n_layers)]
    assert kinds.count(["attention"]) == cfg.n_layers // 4
    assert all(k in (["attention"], ["mamba2"]) for k in kinds)


def test_family_names_match_configs():
    for name in presets.names():
        family, _ = presets.split(name)
        expected = "hybrid" if family.startswith("hybrid") else family
        assert presets.get(name).family == expected


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: presets.get("oryx-mamba3-tiny"), "unknown preset"),
        (lambda: presets.get("oryx-mamba2-huge"), "unknown preset"),
        (lambda: presets.get("oryx-mamba2-tiny", wings=2), "unknown OryxConfig field"),
        (lambda: presets.get("oryx-mamba2-tiny", d_model="x"), "d_model"),
    ],
    ids=["family", "size", "unknown-field", "bad-value"],
)
def test_errors(call, message):
    with pytest.raises((OryxError, ValueError), match=message):
        call()


@pytest.mark.parametrize("family", list(presets.FAMILIES))
def test_dual_layers_are_the_layers_owning_both_mixers(family):
    """Oryx families: every layer owns both mixers; baselines: none does (and the config says so)."""
    cfg = presets.get(f"{family}-tiny")
    expect = [i for i in range(cfg.n_layers) if "attention" in cfg.layer_mixers(i) and cfg.linear_kind(i)]
    oryx = presets.FAMILIES[family].oryx
    assert cfg.dual_layers == expect and len(expect) == (cfg.n_layers if oryx else 0)
    assert cfg.baseline == (not oryx) == presets.FAMILIES[family].baseline
    mixed = cfg.model_copy(update={"mixers": [["attention", "mamba2"], ["attention"]], "n_layers": 2})
    assert mixed.dual_layers == [0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_an_oryx_and_a_baseline_family_with_its_layout(kind):
    """The families come from the registry: oryx-<kind> (attention + kind in every layer) and <kind>
    (the kind alone), both with the kind's head layout and conv activation, at every size."""
    for size, s in presets.SIZES.items():
        layout = KINDS[kind].layout(s.d_model, s.head_dim_qk, s.head_dim_v)
        for family, mixers in ((f"oryx-{kind}", [["attention", kind]]), (kind, [[kind]])):
            cfg = presets.get(f"{family}-{size}")
            assert cfg.mixers == mixers and cfg.linear_kinds == [kind] and cfg.family == family
            assert {f: getattr(cfg, f) for f in layout} == layout, f"{family}-{size}"
            assert cfg.conv_act(0) == KINDS[kind].conv_activation


# The head layouts and SwiGLU widths the presets had before the kind registry: configs and
# checkpoints named after them must keep meaning the same model.
EARLIER_PRESETS = {
    # name: (num_qk_heads, head_dim_qk, num_heads, head_dim_v, mlp_hidden)
    "oryx-mamba2-tiny": (1, 16, 8, 16, 592),
    "oryx-gdn-125m": (3, 128, 6, 256, 1728),
    "mamba2-1.4b": (8, 128, 64, 64, 4224),
    "transformer-small": (4, 64, 4, 64, 1184),
    "hybrid-mamba2-350m": (4, 128, 32, 64, 1920),
}


@pytest.mark.parametrize("name", list(EARLIER_PRESETS))
def test_presets_are_what_they_were(name):
    cfg = presets.get(name)
    assert (cfg.num_qk_heads, cfg.head_dim_qk, cfg.num_heads, cfg.head_dim_v, cfg.mlp_hidden) == EARLIER_PRESETS[name]
