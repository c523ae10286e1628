"""Tokenizers: round trips, special ids, save/load, plain HF directories, bad paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oryx.data.tokenizers import (
    HF_FILE,
    MARKER_FILE,
    SPECIAL_TOKENS,
    ByteTokenizer,
    HFTokenizer,
    load_tokenizer,
    train_bpe,
)
from oryx.errors import OryxError
from tests.data.helpers import random_unicode, random_words, word_list


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture
def words(rng) -> list[str]:
    return word_list(rng)


@pytest.fixture
def bpe(rng, words) -> HFTokenizer:
    return train_bpe([random_words(rng, 400, words) for _ in range(20)], vocab_size=400, min_frequency=2)


@pytest.mark.parametrize("length", [pytest.param(n, id=f"len{n}") for n in (0, 1, 50, 2000)])
def test_byte_round_trip_on_random_unicode(rng, length):
    tok = ByteTokenizer()
    text = random_unicode(rng, length)
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8")) and all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text


def test_byte_special_ids_and_decoding():
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (259, 256, 257, 258)
    ids = [tok.bos_id, *tok.encode("ab"), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "ab"
    assert tok.decode(ids, skip_special=False) == "<|bos|>ab<|eos|><|pad|>"
    assert tok.encode("<|eos|>") == list(b"<|eos|>")  # the text of a special token is just text
    assert tok.decode([0xE2, 0x82]) == "\ufffd"  # a cut multi-byte character decodes to U+FFFD


@pytest.mark.parametrize("bad", [pytest.param(lambda tok: [tok.vocab_size], id="id-vocab-size"),
                                 pytest.param(lambda tok: [-1], id="negative"),
                                 pytest.param(lambda tok: [65, 10**6], id="far-out")])
def test_decode_rejects_ids_out_of_range(bad, bpe):
    for tok in (ByteTokenizer(), bpe):
        with pytest.raises(OryxError, match="out of range"):
            tok.decode(bad(tok))


def test_bpe_learns_merges_and_round_trips(rng, words, bpe):
    assert bpe.name == "bpe" and 259 < bpe.vocab_size <= 400
    assert (bpe.bos_id, bpe.eos_id, bpe.pad_id) == (0, 1, 2)
    text = random_words(rng, 200, words)
    ids = bpe.encode(text)
    assert len(ids) < len(text.encode("utf-8")) / 2, "merges should compress text like the training text"
    assert bpe.decode(ids) == text
    unseen = random_unicode(rng, 300) + " " + SPECIAL_TOKENS["eos"]  # byte-level: anything round-trips
    unseen_ids = bpe.encode(unseen)
    assert bpe.decode(unseen_ids) == unseen
    assert bpe.eos_id not in unseen_ids, "literal special-token text must not become the special id"
    assert bpe.encode_batch([text, unseen]) == [ids, unseen_ids]


def test_bpe_trains_from_files(tmp_path, rng):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"f{i}.txt")
        paths[-1].write_text(random_words(rng, 300), encoding="utf-8")
    tok = train_bpe(paths, vocab_size=300)
    assert 259 < tok.vocab_size <= 300
    assert tok.decode(tok.encode(paths[0].read_text())) == paths[0].read_text()


@pytest.mark.parametrize("make", [pytest.param(lambda bpe: ByteTokenizer(), id="byte"),
                                  pytest.param(lambda bpe: bpe, id="bpe")])
def test_save_load_round_trip_keeps_other_files(tmp_path, rng, bpe, make):
    tok = make(bpe)
    (tmp_path / "config.json").write_text("{}")
    tok.save(tmp_path)
    assert (tmp_path / "config.json").read_text() == "{}"
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.info() == tok.info()
    text = random_words(rng, 50) + random_unicode(rng, 20)
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.decode(tok.encode(text)) == text


def test_plain_hf_directory_loads(tmp_path):
    """A tokenizer.json alone (as Hugging Face ships it): special ids guessed from the usual names, or
    read from a transformers tokenizer_config.json; the file itself works as a spec too."""
    from tokenizers import Tokenizer as HFCore
    from tokenizers import models, pre_tokenizers

    core = HFCore(models.WordLevel({"a": 0, "b": 1, "<|endoftext|>": 2, "[PAD]": 3}, unk_token="a"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(["<|endoftext|>", "[PAD]"])
    core.save(str(tmp_path / HF_FILE))
    tok = load_tokenizer(tmp_path)
    assert tok.info() == {"name": "hf", "vocab_size": 4, "bos_id": 2, "eos_id": 2, "pad_id": 3}  # GPT-2 style
    assert tok.encode("b a b") == [1, 0, 1]
    assert load_tokenizer(tmp_path / HF_FILE).info() == tok.info()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "b"}, "bos_token": "a"}))
    assert (load_tokenizer(tmp_path).eos_id, load_tokenizer(tmp_path).bos_id) == (1, 0)


@pytest.mark.parametrize("setup,match", [
    pytest.param(lambda d: None, "no such directory", id="missing-directory"),
    pytest.param(lambda d: d.mkdir(), "no tokenizer in", id="empty-directory"),
    pytest.param(lambda d: (d.mkdir(), (d / HF_FILE).write_text("{not json")), "not a valid tokenizer.json",
                 id="corrupt-tokenizer-json"),
    pytest.param(lambda d: (d.mkdir(), (d / MARKER_FILE).write_text("[1, 2")), "not valid JSON", id="corrupt-marker"),
])
def test_bad_tokenizer_paths(tmp_path, setup, match):
    target = tmp_path / "tok"
    setup(target)
    with pytest.raises(OryxError, match=match) as info:
        load_tokenizer(target)
    assert "tok" in str(info.value), "the error must name the path"


def test_hf_tokenizer_without_eos_is_rejected(tmp_path):
    from tokenizers import Tokenizer as HFCore
    from tokenizers import models

    HFCore(models.WordLevel({"a": 0, "b": 1}, unk_token="a")).save(str(tmp_path / HF_FILE))
    with pytest.raises(OryxError, match="no end-of-sequence token"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize("source,vocab_size,match", [
    pytest.param(["some text"], 100, ">= 259", id="vocab-too-small"),
    pytest.param("a single string", 300, "not a single string", id="single-string"),
])
def test_train_bpe_bad_input(source, vocab_size, match):
    with pytest.raises(OryxError, match=match):
        train_bpe(source, vocab_size)


def test_train_bpe_missing_file(tmp_path):
    with pytest.raises(OryxError, match=r"nope\.txt"):
        train_bpe([tmp_path / "nope.txt"], 300)


def test_tokenizer_docstring():
    import doctest

    from oryx.data import tokenizers

    result = doctest.testmod(tokenizers, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0
