"""Prepared corpora: the files recipe end to end, document split, sampler resume, atomic writes, corruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oryx.data import recipes
from oryx.data.corpus import MANIFEST_FILE, TokenCorpus, token_dtype
from oryx.data.prepare import prepare, split_documents
from oryx.data.synthetic import IGNORE
from oryx.errors import OryxError
from tests.data.helpers import write_documents

N_DOCS = 12


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    return write_documents(tmp_path_factory.mktemp("text"), n=N_DOCS, seed=3)


@pytest.fixture(scope="module")
def corpus(texts, tmp_path_factory) -> TokenCorpus:
    folder = next(iter(texts)).parent
    out = prepare("files", tmp_path_factory.mktemp("c") / "corpus", val_fraction=0.25, seed=1,
                  inputs=[str(folder / "doc_*.txt")])
    return TokenCorpus.open(out)


def test_files_recipe_end_to_end(corpus, texts):
    m = corpus.manifest
    assert (m.recipe, m.dtype, m.val_fraction, m.seed) == ("files", "uint16", 0.25, 1)
    assert m.tokenizer.model_dump() == corpus.tokenizer.info() and m.tokenizer.name == "byte"
    assert m.options == {"inputs": [str(next(iter(texts)).parent / "doc_*.txt")], "document": "file"}
    docs = corpus.documents()
    assert sorted(d["name"] for d in docs) == sorted(map(str, texts))
    assert sum(d["split"] == "val" for d in docs) == m.splits["val"].documents == round(0.25 * N_DOCS)
    assert m.splits["train"].documents + m.splits["val"].documents == N_DOCS
    eos = corpus.tokenizer.eos_id
    for split in ("train", "val"):
        tokens = corpus.tokens(split)
        assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16 and len(tokens) == m.splits[split].tokens
        assert (corpus.directory / f"{split}.bin").stat().st_size == 2 * len(tokens)
        split_docs = corpus.documents(split)
        assert (tokens == eos).sum() == len(split_docs)  # one eos after each document, none elsewhere
        for d in split_docs:  # each document decodes back to its file, and is followed by eos
            start, n = d["start"], d["tokens"]
            assert corpus.tokenizer.decode(tokens[start:start + n]) == texts[Path(d["name"])]
            assert tokens[start + n] == eos


def test_document_split_is_seeded_and_by_document():
    a, b, c = split_documents(40, 0.2, 5), split_documents(40, 0.2, 5), split_documents(40, 0.2, 6)
    assert a.sum() == 8 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert split_documents(3, 0.01, 0).sum() == 1, "val_fraction > 0 holds out at least one document"
    assert split_documents(3, 0.9, 0).sum() == 2, "... and never all of them"
    assert split_documents(5, 0.0, 0).sum() == 0
    with pytest.raises(OryxError, match="single document"):
        split_documents(1, 0.1, 0)


@pytest.mark.parametrize("vocab_size,dtype", [(259, "uint16"), (65_536, "uint16"), (65_537, "uint32"),
                                              (200_000, "uint32")])
def test_token_dtype(vocab_size, dtype):
    assert token_dtype(vocab_size) == dtype
    assert vocab_size - 1 <= np.iinfo(dtype).max


def test_paragraph_documents(tmp_path):
    (tmp_path / "one.txt").write_text("first para\nstill first\n\n\nsecond\n  \nthird\n", encoding="utf-8")
    corpus = TokenCorpus.open(prepare("files", tmp_path / "c", val_fraction=0.34, inputs=[str(tmp_path / "one.txt")],
                                      document="paragraph"))
    docs = corpus.documents()
    assert [d["name"].rsplit("#")[1] for d in docs] == ["0", "1", "2"]
    decoded = {corpus.tokenizer.decode(corpus.tokens(d["split"])[d["start"]:d["start"] + d["tokens"]]) for d in docs}
    assert decoded == {"first para\nstill first", "second", "third"}


def test_bpe_spec_trains_on_the_train_split(texts, tmp_path):
    folder = next(iter(texts)).parent
    corpus = TokenCorpus.open(prepare("files", tmp_path / "c", tokenizer_spec="bpe:300", inputs=[str(folder)]))
    assert corpus.tokenizer.name == "bpe" and corpus.manifest.tokenizer.vocab_size == corpus.tokenizer.vocab_size
    d = corpus.documents("train")[0]
    tokens = corpus.tokens("train")
    assert corpus.tokenizer.decode(tokens[d["start"]:d["start"] + d["tokens"]]) == texts[Path(d["name"])]


def windows_of(tokens: np.ndarray, T: int) -> set[tuple[int, ...]]:
    return {tuple(w) for w in np.lib.stride_tricks.sliding_window_view(tokens.astype(np.int64), T)}


def test_batch_is_deterministic_in_seed_and_step(corpus):
    x, y = corpus.batch("train", step=3, batch_size=4, seq_len=32, seed=9)
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64 and torch.equal(x, y)
    assert all(tuple(row) in windows_of(corpus.tokens("train"), 32) for row in x.tolist())
    assert torch.equal(x, corpus.batch("train", 3, 4, 32, 9)[0])
    assert not torch.equal(x, corpus.batch("train", 4, 4, 32, 9)[0])
    assert not torch.equal(x, corpus.batch("train", 3, 4, 32, 10)[0])


def test_resumed_run_gets_the_same_batches(corpus):
    """Steps 0..9 in one run == steps 0..4, then a fresh process (a new TokenCorpus) resuming at step 5;
    whatever else is drawn in between (validation batches) changes nothing."""
    straight = [corpus.batch("train", s, 4, 16, seed=2)[0] for s in range(10)]
    first = [corpus.batch("train", s, 4, 16, seed=2)[0] for s in range(5)]
    corpus.batch("val", 0, 8, 16, seed=2)
    list(corpus.val_batches(4, 16))
    resumed = TokenCorpus.open(corpus.directory)
    second = [resumed.batch("train", s, 4, 16, seed=2)[0] for s in range(5, 10)]
    assert all(torch.equal(a, b) for a, b in zip(straight, first + second))


def test_ranks_split_one_global_batch(corpus):
    whole = corpus.batch("train", 7, 6, 16, seed=1, world_size=1)[0]
    ranks = [corpus.batch("train", 7, 3, 16, seed=1, rank=r, world_size=2)[0] for r in range(2)]
    assert torch.equal(torch.cat(ranks), whole), "two ranks of 3 rows = one process of 6, no overlap"


@pytest.mark.parametrize("seq_len", [pytest.param(t, id=f"T{t}") for t in (2, 17, 64)])
def test_val_batches_cover_every_token_once(corpus, seq_len):
    tokens = corpus.tokens("val").astype(np.int64)
    labels = []
    for x, y in corpus.val_batches(batch_size=3, seq_len=seq_len):
        assert x.shape == y.shape and x.shape[1] == seq_len and x.shape[0] <= 3
        assert (y[:, 0] == IGNORE).all()
        kept = y != IGNORE
        assert torch.equal(y[kept], x[kept])
        labels += y[kept].tolist()
    assert labels == tokens[1:].tolist(), "every token after the first is a target exactly once, in order"
    assert sum(len(x) for x, _ in corpus.val_batches(3, seq_len)) == corpus.num_windows(seq_len)
    assert sum(len(x) for x, _ in corpus.val_batches(3, seq_len, max_windows=2)) == 2


@pytest.mark.parametrize("kwargs,match", [
    pytest.param(dict(split="test"), "unknown split", id="unknown-split"),
    pytest.param(dict(seq_len=10**7), "fewer than seq_len", id="window-longer-than-split"),
    pytest.param(dict(step=-1), "step must be", id="negative-step"),
    pytest.param(dict(rank=2, world_size=2), "rank must be", id="rank-out-of-range"),
])
def test_batch_bad_arguments(corpus, kwargs, match):
    args = dict(split="train", step=0, batch_size=2, seq_len=8, seed=0) | kwargs
    with pytest.raises(OryxError, match=match):
        corpus.batch(**args)


def test_interrupted_prepare_leaves_nothing(texts, tmp_path, monkeypatch):
    """A failure while writing (here: reading the 5th document when it is written, after deduplication
    read it once) leaves no corpus and no temporary files."""
    folder = next(iter(texts)).parent
    real = recipes.FilesRecipe.documents

    def failing(self):
        docs = real(self)
        reads = []

        def read_once(read=docs[4].read):
            reads.append(1)
            if len(reads) > 1:
                raise KeyboardInterrupt
            return read()

        docs[4] = recipes.Document(docs[4].name, read_once)
        return docs

    monkeypatch.setattr(recipes.FilesRecipe, "documents", failing)
    out = tmp_path / "out" / "corpus"
    with pytest.raises(KeyboardInterrupt):
        prepare("files", out, inputs=[str(folder)])
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_existing_output_is_never_lost(texts, tmp_path):
    folder = next(iter(texts)).parent
    out = prepare("files", tmp_path / "c", inputs=[str(folder)], seed=1)
    before = (out / MANIFEST_FILE).read_text()
    with pytest.raises(OryxError, match="already exists"):
        prepare("files", out, inputs=[str(folder)], seed=2)
    assert (out / MANIFEST_FILE).read_text() == before
    prepare("files", out, inputs=[str(folder)], seed=2, overwrite=True)
    assert TokenCorpus.open(out).manifest.seed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"], "no temporary or old directories left behind"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OryxError, match="not a prepared corpus"):
        prepare("files", tmp_path / "mine", inputs=[str(folder)], overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def corrupt(directory, how: str) -> None:
    manifest = directory / MANIFEST_FILE
    if how == "truncated-tokens":
        data = (directory / "train.bin").read_bytes()
        (directory / "train.bin").write_bytes(data[:-3])
    elif how == "missing-tokens":
        (directory / "val.bin").unlink()
    elif how == "manifest-not-json":
        manifest.write_text(manifest.read_text()[:40])
    elif how == "manifest-missing-field":
        m = json.loads(manifest.read_text())
        del m["dtype"]
        manifest.write_text(json.dumps(m))
    elif how == "manifest-unknown-field":
        manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"extra": 1}))
    elif how == "tokenizer-mismatch":
        m = json.loads(manifest.read_text())
        m["tokenizer"]["vocab_size"] = 300
        manifest.write_text(json.dumps(m))
    elif how == "no-manifest":
        manifest.unlink()


@pytest.mark.parametrize("how,match", [
    ("truncated-tokens", "truncated or corrupt"), ("missing-tokens", "missing"),
    ("manifest-not-json", "not valid JSON"), ("manifest-missing-field", "dtype"),
    ("manifest-unknown-field", "extra"), ("tokenizer-mismatch", "do not match"), ("no-manifest", "not a prepared corpus"),
])
def test_corrupt_corpus_is_an_error_naming_the_path(texts, tmp_path, how, match):
    folder = next(iter(texts)).parent
    out = prepare("files", tmp_path / "c", inputs=[str(folder)])
    corrupt(out, how)
    with pytest.raises(OryxError, match=match) as info:
        TokenCorpus.open(out)
    assert str(out) in str(info.value)


@pytest.mark.parametrize("kwargs,match", [
    pytest.param(dict(recipe="nope"), "unknown recipe", id="unknown-recipe"),
    pytest.param(dict(inputs=["/does/not/exist/*.txt"]), "matches no file", id="glob-matches-nothing"),
    pytest.param(dict(val_fraction=1.0), "val_fraction", id="val-fraction-1"),
    pytest.param(dict(seed=-3), "seed", id="negative-seed"),
    pytest.param(dict(tokenizer_spec="bpe:lots"), "bpe:N", id="bad-bpe-spec"),
    pytest.param(dict(tokenizer_spec="/no/such/tokenizer"), "no/such/tokenizer", id="missing-tokenizer"),
    pytest.param(dict(dataset="wikitext"), "takes no option 'dataset'", id="option-of-another-recipe"),
])
def test_prepare_bad_input(texts, tmp_path, kwargs, match):
    folder = next(iter(texts)).parent
    args = dict(recipe="files", out_dir=tmp_path / "c", inputs=[str(folder)]) | kwargs
    with pytest.raises(OryxError, match=match):
        prepare(**args)
    assert not (tmp_path / "c").exists()


def test_binary_input_file_is_named(tmp_path):
    (tmp_path / "a.txt").write_text("fine")
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(OryxError, match=r"b\.bin is not UTF-8"):
        prepare("files", tmp_path / "c", inputs=[str(tmp_path / "a.txt"), str(tmp_path / "b.bin")])
