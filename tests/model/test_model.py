"""Model invariants: causality, decoding == parallel forward, both states written at every position,
backends agree, query tying, generation, and bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oryx import OryxConfig, OryxForCausalLM, count_parameters, presets
from oryx.model import state_bytes
from oryx.model.mixer import OryxMixer
from tests.utils import assert_close

FAMILIES = list(presets.FAMILIES)
ORYX_FAMILIES = [name for name, family in presets.FAMILIES.items() if family.oryx]


def tiny(family: str, **overrides) -> OryxForCausalLM:
    """A float64 tiny model with short chunks, so chunk boundaries fall inside test sequences."""
    cfg = presets.get(f"{family}-tiny", chunk_size=8, **overrides)
    return OryxForCausalLM(cfg).double().eval()


def random_modes(model: OryxForCausalLM, B: int, T: int, p: float = 0.5) -> torch.Tensor | None:
    """Per-layer masks that switch often for models with dual layers, None (native) for baselines."""
    if not any(len(b.mixer.modes) == 2 for b in model.layers):
        return None
    return torch.rand(model.config.n_layers, B, T) < p


@pytest.mark.parametrize("family", FAMILIES)
def test_future_tokens_do_not_change_past_logits(family):
    model = tiny(family)
    B, T, p = 2, 40, 23
    ids = torch.randint(0, 256, (B, T))
    modes = random_modes(model, B, T)
    changed = ids.clone()
    changed[:, p:] = torch.randint(0, 256, (B, T - p))
    a = model(ids, modes=modes).logits
    b = model(changed, modes=modes).logits
    assert torch.equal(a[:, :p], b[:, :p])
    assert not torch.allclose(a[:, p:], b[:, p:])  # the test would notice a model ignoring its input


SPLITS = {
    "one-step-at-a-time": [1] * 21,
    "prefill-then-decode": [13, 1, 1, 1, 1, 1, 1, 1, 1],
    "ragged-prefills": [5, 1, 9, 1, 1, 4],
}


@pytest.mark.parametrize("split", list(SPLITS), ids=list(SPLITS))
@pytest.mark.parametrize("family", FAMILIES)
def test_cached_decoding_equals_parallel_forward(family, split):
    model = tiny(family)
    sizes = SPLITS[split]
    B, T = 2, sum(sizes)
    ids = torch.randint(0, 256, (B, T))
    modes = random_modes(model, B, T)
    full = model(ids, modes=modes).logits
    cache, pos, pieces = model.new_cache(B), 0, []
    for n in sizes:
        m = None if modes is None else modes[..., pos : pos + n]
        pieces.append(model(ids[:, pos : pos + n], modes=m, cache=cache).logits)
        pos += n
    assert cache.seq_len == T
    assert_close("logits", full, torch.cat(pieces, 1), 1e-10)


@pytest.mark.parametrize("tying", ["separate", "shared", "lowrank"])
@pytest.mark.parametrize("family", ORYX_FAMILIES)
def test_each_position_reads_its_mode_over_all_positions(family, tying):
    """Both states absorb every position: under a mixed mask, a position's output is exactly what the
    all-attention (or all-linear) pass gives there — which reads keys/states of every earlier position."""
    cfg = presets.get(f"{family}-tiny", chunk_size=8, query_tying=tying)
    mixer = OryxMixer(cfg, 0).double()
    x = torch.randn(2, 30, cfg.d_model, dtype=torch.float64)
    mask = torch.rand(2, 30) < 0.5
    ones = torch.ones_like(mask)
    mixed = mixer(x, mask)
    expected = torch.where(mask[..., None], mixer(x, ones), mixer(x, ~ones))
    assert_close("mixed vs per-mode", expected, mixed, 1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_naive_and_torch_backends_agree_forward_and_backward(family):
    model = tiny(family)
    ref = OryxForCausalLM(model.config.model_copy(update={"backend": "naive"})).double()
    ref.load_state_dict(model.state_dict())
    B, T = 2, 26
    ids = torch.randint(0, 256, (B, T))
    modes = random_modes(model, B, T)
    out = model(ids, modes=modes, labels=ids)
    expect = ref(ids, modes=modes, labels=ids)
    assert_close("logits", expect.logits, out.logits, 1e-10)
    out.loss.backward()
    expect.loss.backward()
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        if q.grad is None:
            assert p.grad is None, name
        else:
            assert_close(f"grad {name}", q.grad, p.grad, 1e-9)


def test_loss_is_next_token_cross_entropy():
    model = tiny("oryx-gdn")
    ids = torch.randint(0, 256, (2, 12))
    labels = ids.clone()
    labels[:, :5] = -100
    out = model(ids, modes="last:4", labels=labels)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, 259), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, manual)


def test_modes_output_reports_what_each_layer_ran():
    model = tiny("hybrid-mamba2")
    out = model(torch.randint(0, 256, (2, 9)))
    kinds = [model.config.layer_mixers(i) for i in range(model.config.n_layers)]
    assert out.modes.shape == (model.config.n_layers, 2, 9)
    for i, owned in enumerate(kinds):
        assert bool(out.modes[i].all()) == (owned == ["attention"])
    oryx = tiny("oryx-mamba2")
    assert oryx(torch.randint(0, 256, (1, 12)), modes="last:5").modes[:, 0].sum(-1).tolist() == [5, 5]


def test_mode_counts_are_read_once_per_forward(monkeypatch):
    """The model reads every layer's (fewest, most) attention positions in one device-to-host read and
    hands them down; the mixers read none themselves. The counts are those of each layer's mask."""
    import oryx.model.mixer as mixer_module
    import oryx.model.modeling as modeling_module
    from oryx.ops.attention import mode_counts

    seen = []
    monkeypatch.setattr(modeling_module, "mode_counts", lambda m: seen.append(m) or mode_counts(m))
    monkeypatch.setattr(mixer_module, "mode_counts", lambda m: pytest.fail("a mixer read its own counts"))
    model = tiny("oryx-mamba2")
    modes = torch.rand(2, 3, 10) < 0.4
    modes[1, 2] = True
    model(torch.randint(0, 256, (3, 10)), modes=modes)
    assert len(seen) == 1
    per_row = modes.sum(-1)
    assert mode_counts(modes) == [(int(r.min()), int(r.max())) for r in per_row]
    assert mode_counts(modes[0]) == [(int(per_row[0].min()), int(per_row[0].max()))]
    assert mode_counts(torch.zeros(2, 0, 5, dtype=torch.bool)) == [(0, 0), (0, 0)]   # an empty batch


@pytest.mark.parametrize("position_encoding", ["rope", "none"])
def test_position_encoding_options_decode_exactly(position_encoding):
    model = tiny("oryx-mamba2", position_encoding=position_encoding)
    ids = torch.randint(0, 256, (1, 15))
    modes = torch.rand(2, 1, 15) < 0.5
    full = model(ids, modes=modes).logits
    cache = model.new_cache(1)
    steps = torch.cat([model(ids[:, i : i + 1], modes=modes[..., i : i + 1], cache=cache).logits for i in range(15)], 1)
    assert_close("logits", full, steps, 1e-10)


def test_query_tying_changes_only_the_specific_parameters():
    counts = {}
    for tying in ("separate", "shared", "lowrank"):
        with torch.device("meta"):
            counts[tying] = count_parameters(OryxForCausalLM(presets.get("oryx-mamba2-small", query_tying=tying)))
    assert counts["shared"]["mixer_specific"] < counts["lowrank"]["mixer_specific"] < counts["separate"]["mixer_specific"]
    assert counts["shared"]["tied_fraction"] > counts["separate"]["tied_fraction"]


def test_lowrank_delta_starts_at_zero():
    """At init the low-rank query delta is zero: linear mode then reads with the attention query."""
    cfg = presets.get("oryx-mamba2-tiny", query_tying="lowrank")
    mixer = OryxForCausalLM(cfg).layers[0].mixer
    x = torch.randn(1, 6, cfg.d_model)
    assert torch.equal(mixer.lin.query(x, mixer.q_proj(x), None)[0],
                       mixer.lin.expand_heads(mixer.lin.q_conv(mixer.q_proj(x))[0]))


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_equals_argmax_of_parallel_forward(family):
    model = tiny(family)
    prompt = torch.randint(0, 256, (2, 7))
    schedule = None if model.config.baseline else "chunks:3:0.5"
    out = model.generate(prompt, 6, modes=schedule, temperature=0)
    seq = prompt
    for _ in range(6):
        nxt = model(seq, modes=schedule).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(out, seq)


def test_generate_returns_the_modes_it_ran():
    model = tiny("oryx-mamba2")
    prompt = torch.randint(0, 259, (2, 6))
    ids, modes = model.generate(prompt, 5, modes="chunks:2:0.5", temperature=0, return_modes=True)
    assert modes.shape == (2, 2, 10)
    assert torch.equal(modes, model(ids[:, :-1], modes="chunks:2:0.5").modes)


def test_generation_with_explicit_mask_sampling_and_eos():
    model = tiny("oryx-gdn")
    prompt = torch.randint(0, 256, (3, 5))
    mask = torch.rand(2, 3, 13) < 0.5
    a = model.generate(prompt, 8, modes=mask, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 8, modes=mask, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 13) and torch.equal(a, b)
    eos = int(model.generate(prompt, 1, modes=mask[..., :6], temperature=0)[0, -1])
    out = model.generate(prompt, 8, modes=mask, temperature=0, eos_token_id=eos)
    assert (out[0, 5:] == eos).all()  # row 0 emits eos first, then keeps emitting it


@pytest.mark.parametrize("family", FAMILIES)
def test_state_bytes_matches_a_live_cache(family):
    model = tiny(family).float()
    cache = model.new_cache(3)
    model(torch.randint(0, 256, (3, 10)), cache=cache)
    sb = state_bytes(model.config, dtype_bytes=4)
    expect = 3 * (10 * sb["kv_cache_per_position"] + sb["recurrent_per_sequence"] + sb["conv_per_sequence"])
    assert cache.state_bytes() == expect


BAD_INPUTS = [
    pytest.param(lambda m: m(torch.rand(1, 4)), "integer tensor", id="float-ids"),
    pytest.param(lambda m: m(torch.tensor([[1, 259]])), "out of range", id="id-too-large"),
    pytest.param(lambda m: m(torch.tensor([[-1, 2]])), "out of range", id="id-negative"),
    pytest.param(lambda m: m(torch.tensor([1, 2])), r"\[batch, length\]", id="ids-1d"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), modes=torch.ones(1, 5, dtype=torch.bool)),
                 "modes must be", id="mask-wrong-shape"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), modes=torch.ones(1, 4)), "bool", id="mask-float"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), modes="chunks:0:1"), "SIZE", id="bad-schedule"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), modes="middle:3"), "unknown schedule", id="unknown-schedule"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), cache=m.new_cache(2)), "cache holds", id="cache-batch"),
    pytest.param(lambda m: m(torch.ones(1, 70000, dtype=torch.long)), "longer than the model supports", id="too-long"),
    pytest.param(lambda m: m(torch.ones(1, 4, dtype=torch.long), labels=torch.ones(1, 3, dtype=torch.long)),
                 "labels", id="labels-shape"),
    pytest.param(lambda m: m.generate(torch.ones(1, 4, dtype=torch.long), -1), "max_new_tokens", id="generate-negative"),
]


@pytest.mark.parametrize("call,message", BAD_INPUTS)
def test_bad_inputs_raise_value_error_naming_the_problem(call, message):
    model = tiny("oryx-mamba2")
    with pytest.raises(ValueError, match=message):
        call(model)


@pytest.mark.parametrize(
    "family,modes,message",
    [
        ("transformer", "all_linear", "owns only 'attention'"),
        ("mamba2", "all_attention", "owns only 'mamba2'"),
        ("gdn", "last:2", "owns only 'gdn'"),
        ("hybrid-mamba2", "all_linear", "owns only 'attention'"),
    ],
)
def test_single_mixer_layer_rejects_the_other_mode(family, modes, message):
    with pytest.raises(ValueError, match=message):
        tiny(family)(torch.ones(1, 4, dtype=torch.long), modes=modes)


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(mixers=["attention", "mamba2", "gdn"]), "two linear mixers"),
        (dict(mixers=[]), "mixers has 0 layer lists"),
        (dict(num_heads=6, num_qk_heads=4), "multiple of num_qk_heads"),
        (dict(mixers=["attention", "rwkv"]), "mixers"),
        (dict(d_model="wide"), "d_model"),
        (dict(dmodel=64), "dmodel"),
        (dict(default_schedule="chunks:8"), "chunks"),
    ],
    ids=["two-linear", "no-mixers", "heads", "unknown-mixer", "wrong-type", "unknown-key", "bad-default-schedule"],
)
def test_config_errors_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        OryxConfig(**fields)
