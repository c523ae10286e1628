"""Needle in a haystack: every label checked against its sequence, in random and corpus filler modes."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from oryx.data.prepare import prepare
from oryx.data.synthetic import IGNORE, NIAHConfig, niah
from oryx.errors import OryxError
from tests.data.helpers import global_rng_state, same_rng_state, write_documents

RANDOM_CASES = [
    pytest.param(dict(vocab_size=26, context_len=15, depth=0.5, key_len=2, value_len=2), id="V26-C15-d0.5"),
    pytest.param(dict(vocab_size=256, context_len=[32, 48], depth=[0.0, 0.25, 1.0]), id="V256-C32,48-d0,0.25,1"),
    pytest.param(dict(vocab_size=1000, context_len=200, depth=[0.1, 0.9], key_len=4, value_len=6), id="V1000-C200-k4-v6"),
    pytest.param(dict(vocab_size=64, context_len=11, depth=0.7, key_len=1, value_len=4), id="V64-C11-no-filler-room"),
]


def runs(roles: list[str]) -> list[tuple[str, int, int]]:
    """[(role, start, end)] of the maximal runs of equal roles."""
    out, start = [], 0
    for t in range(1, len(roles) + 1):
        if t == len(roles) or roles[t] != roles[start]:
            out.append((roles[start], start, t))
            start = t
    return out


def check_random_example(config: NIAHConfig, ids, labels, roles, depth: float, context_len: int, needle_start: int):
    """Parse one random-filler example from its ids alone and check labels, roles and slices."""
    r = config.ranges
    names = [niah.ROLES[x] for x in roles]
    assert all(n == "pad" for n in names[context_len:]) and all(i == niah.PAD_ID for i in ids[context_len:])
    ids, labels, names = ids[:context_len], labels[:context_len], names[:context_len]
    assert "pad" not in names
    # the question is the marker, then the key; everything after it is the answer
    q = ids.index(niah.QUESTION_ID)
    assert ids.count(niah.QUESTION_ID) == 1
    key = ids[q + 1:q + 1 + config.key_len]
    answer = ids[q + 1 + config.key_len:]
    assert len(answer) == config.value_len and all(a in r["value"] for a in answer)
    # the needle: the key's only earlier occurrence, followed by the value the answer must copy
    needle_at = [t for t in range(q) if ids[t:t + config.key_len] == key]
    assert needle_at == [needle_start], "the key occurs exactly once before the question, at needle_start"
    value = ids[needle_start + config.key_len:needle_start + config.key_len + config.value_len]
    assert answer == value
    assert all(k in r["key"] for k in key)
    # labels: exactly the answer positions, equal to the value (and to the input there)
    assert labels[q + 1 + config.key_len:] == value
    assert all(label == IGNORE for label in labels[:q + 1 + config.key_len])
    # filler: the rest, from the filler range, split by the needle at round-half-up(depth * H)
    filler = [t for t, n in enumerate(names) if n == "filler"]
    assert all(ids[t] in r["filler"] for t in filler)
    H = context_len - 2 * config.key_len - 2 * config.value_len - 1
    assert len(filler) == H and needle_start == int(np.floor(depth * H + 0.5))
    expected = [("filler", 0, needle_start), ("needle_key", needle_start, needle_start + config.key_len),
                ("needle_value", needle_start + config.key_len, needle_start + config.key_len + config.value_len),
                ("filler", needle_start + config.key_len + config.value_len, q), ("question", q, q + 1 + config.key_len),
                ("answer", q + 1 + config.key_len, context_len)]
    assert runs(names) == [e for e in expected if e[1] < e[2]]


@pytest.mark.parametrize("kwargs", RANDOM_CASES)
def test_random_filler_labels_match_their_sequence(kwargs, seed):
    config = NIAHConfig(num_examples=5, seed=seed, **kwargs)
    batch = config.generate()
    cells = len(config.context_len) * len(config.depth)
    assert len(batch) == config.num_examples * cells
    assert batch.input_ids.shape[1] == max(config.context_len)
    assert batch.role_names == niah.ROLES and batch.roles.dtype == torch.uint8
    assert int(batch.input_ids.max()) < config.vocab_size
    # every (context_len, depth) cell of the grid appears num_examples times
    seen = sorted(zip(batch.slices["context_len"].tolist(), batch.slices["depth"].tolist()))
    assert seen == sorted((c, d) for c in config.context_len for d in config.depth for _ in range(config.num_examples))
    for n in range(len(batch)):
        check_random_example(config, batch.input_ids[n].tolist(), batch.labels[n].tolist(), batch.roles[n].tolist(),
                             float(batch.slices["depth"][n]), int(batch.slices["context_len"][n]),
                             int(batch.slices["needle_start"][n]))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A small byte-tokenizer corpus to cut haystacks from."""
    root = tmp_path_factory.mktemp("niah")
    write_documents(root / "text", n=6, seed=11, n_words=120)
    return prepare("files", root / "corpus", val_fraction=0.4, inputs=[str(root / "text")])


def test_corpus_filler_labels_match_their_sequence(corpus_dir, seed):
    from oryx.data.corpus import TokenCorpus

    config = NIAHConfig(filler=str(corpus_dir), context_len=[160, 200], depth=[0.0, 0.5, 1.0], key_len=3,
                        value_len=5, num_examples=2, seed=seed)
    corpus = TokenCorpus.open(corpus_dir)
    tok = corpus.tokenizer
    haystack_source = corpus.tokens("val").astype(np.int64)
    assert config.tokenizer() is not None and config.tokenizer().info() == tok.info()
    batch = config.generate()
    for n in range(len(batch)):
        C = int(batch.slices["context_len"][n])
        ids, labels = batch.input_ids[n, :C], batch.labels[n, :C]
        names = [niah.ROLES[x] for x in batch.roles[n, :C].tolist()]
        assert all(niah.ROLES[x] == "pad" for x in batch.roles[n, C:].tolist())
        text = {role: tok.decode(ids[[k for k, m in enumerate(names) if m == role]]) for role in set(names)}
        key, value = text["needle_key"], text["needle_value"]
        assert len(key) == 3 and key.isalpha() and key.islower()
        assert len(value) == 5 and value.isdigit()
        assert text["needle"] == niah.NEEDLE_TEXT[0] + niah.NEEDLE_TEXT[1] + niah.NEEDLE_TEXT[2]
        assert text["question"] == niah.QUESTION_TEXT[0] + key + niah.QUESTION_TEXT[1]
        assert text["answer"] == value and names[-len(tok.encode(value)):] == ["answer"] * len(tok.encode(value))
        # labels: the answer's ids where the answer is, nothing elsewhere
        answer = labels != IGNORE
        assert torch.equal(labels[answer], ids[answer]) and tok.decode(labels[answer]) == value
        # the haystack is one contiguous window of the val split, cut where the needle went in
        filler = ids[[k for k, m in enumerate(names) if m == "filler"]].numpy()
        windows = np.lib.stride_tricks.sliding_window_view(haystack_source, len(filler))
        assert (windows == filler).all(axis=1).any(), "filler is not a window of the corpus"
        start = int(batch.slices["needle_start"][n])
        assert names[start] == "needle" and start == int(np.floor(float(batch.slices["depth"][n]) * len(filler) + 0.5))


def test_same_seed_same_batch_other_seed_other_batch(seed):
    make = lambda s: NIAHConfig(context_len=[40, 64], depth=[0.2, 0.8], num_examples=3, seed=s).generate()  # noqa: E731
    a, b, c = make(seed), make(seed), make(seed + 1)
    for name in ("input_ids", "labels", "roles"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert all(torch.equal(a.slices[k], b.slices[k]) for k in a.slices)
    assert not torch.equal(a.input_ids, c.input_ids)


def test_global_random_state_untouched(corpus_dir):
    before = global_rng_state()
    NIAHConfig(context_len=64, num_examples=4).generate()
    NIAHConfig(filler=str(corpus_dir), context_len=128, num_examples=2).generate()
    assert same_rng_state(before, global_rng_state())


def test_worked_example_in_docstring():
    result = doctest.testmod(niah, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("kwargs", [
    pytest.param(dict(depth=1.5), id="depth-above-1"),
    pytest.param(dict(depth=[0.5, -0.1]), id="negative-depth-in-list"),
    pytest.param(dict(context_len=8, key_len=2, value_len=2), id="context-shorter-than-needle"),
    pytest.param(dict(context_len=[]), id="no-context-length"),
    pytest.param(dict(vocab_size=5), id="vocab-too-small"),
    pytest.param(dict(filler_split="test"), id="unknown-split"),
    pytest.param(dict(needle_depth=0.5), id="unknown-key"),
    pytest.param(dict(key_len="two"), id="wrong-type"),
])
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        NIAHConfig(**kwargs)


def test_bad_corpus_filler(tmp_path, corpus_dir):
    with pytest.raises(OryxError, match="not a directory"):
        NIAHConfig(filler=str(tmp_path / "missing")).generate()
    with pytest.raises(OryxError, match="vocab_size 1000 differs"):
        NIAHConfig(filler=str(corpus_dir), vocab_size=1000).generate()
    with pytest.raises(OryxError, match="fewer than"):
        NIAHConfig(filler=str(corpus_dir), context_len=100_000).generate()
    with pytest.raises(OryxError, match="too short"):
        NIAHConfig(filler=str(corpus_dir), context_len=40).generate()
