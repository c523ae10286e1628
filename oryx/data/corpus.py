"""Prepared corpora: token ids in memory-mapped files, a small JSON manifest, the tokenizer beside them.

A corpus directory (written by `oryx data prepare`, see oryx/data/prepare.py):

    manifest.json      CorpusManifest: recipe, options, tokenizer, dtype, tokens, bytes and documents per
                       split, duplicates left out
    train.bin, val.bin the token ids of each split, raw little-endian uint16 (vocab_size <= 65536) or
                       uint32; every document is followed by the tokenizer's eos id
    documents.jsonl    one line per document: {"name", "split", "start", "tokens"} (eos not counted)
    tokenizer files    whatever `Tokenizer.save` writes (oryx_tokenizer.json, tokenizer.json for BPE)

    corpus = TokenCorpus.open("data/shakespeare")
    x, y = corpus.batch("train", step=1000, batch_size=8, seq_len=256, seed=0)   # [8, 256] each
    for x, y in corpus.val_batches(batch_size=8, seq_len=256): ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oryx.data.synthetic.base import IGNORE
from oryx.data.tokenizers import Tokenizer, load_tokenizer
from oryx.errors import OryxError, format_validation_error
from oryx.fileio import read_json_object

MANIFEST_FILE = "manifest.json"
DOCUMENTS_FILE = "documents.jsonl"
SPLITS: tuple[str, ...] = ("train", "val")
Split = Literal["train", "val"]
# Mixed into the sampler's seed so that train and val windows of one step are independent draws.
_SPLIT_CODE = {"train": 0, "val": 1}


def token_dtype(vocab_size: int) -> str:
    """'uint16' when every id 0..vocab_size-1 fits in 16 bits, else 'uint32'."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


class SplitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="token file of the split, relative to the corpus directory")
    tokens: int = Field(ge=0, description="token ids in the file, eos separators included")
    documents: int = Field(ge=0, description="documents in the split")
    bytes: int | None = Field(None, ge=0, description="UTF-8 bytes of the split's documents (None: a corpus "
                              "prepared before this was recorded)")


class TokenizerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="tokenizer kind: byte, bpe, hf")
    vocab_size: int = Field(ge=1, description="ids are 0..vocab_size-1")
    bos_id: int = Field(description="beginning-of-sequence id")
    eos_id: int = Field(description="end-of-sequence id; follows every document in the token files")
    pad_id: int | None = Field(description="padding id, if the tokenizer has one")


class CorpusManifest(BaseModel):
    """manifest.json of a prepared corpus."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["oryx-corpus"] = Field("oryx-corpus", description="marks an Oryx corpus directory")
    version: Literal[1] = Field(1, description="layout version of the directory")
    recipe: str = Field(description="recipe that made the corpus (files, shakespeare, hf, english)")
    options: dict = Field(description="the recipe's options, as validated")
    source: dict = Field(default_factory=dict, description="provenance beyond the options (e.g. archive sha256)")
    tokenizer: TokenizerInfo = Field(description="the tokenizer whose files sit in the directory")
    dtype: Literal["uint16", "uint32"] = Field(description="element type of the token files")
    val_fraction: float = Field(ge=0, lt=1, description="share of documents held out for validation")
    duplicates: int = Field(0, ge=0, description="documents left out as duplicates of an earlier one "
                            "(same text up to whitespace)")
    seed: int = Field(ge=0, description="seed of the train/validation split of the documents")
    splits: dict[Split, SplitInfo] = Field(description="token file, token count and document count per split")
    created: str = Field(description="UTC time of preparation, ISO 8601")
    oryx_version: str = Field(description="version of the toolkit that prepared it")


class TokenCorpus:
    """A prepared corpus directory, opened read-only."""

    def __init__(self, directory: Path, manifest: CorpusManifest, tokenizer: Tokenizer):
        self.directory = directory
        self.manifest = manifest
        self.tokenizer = tokenizer
        self._tokens: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, directory: str | Path) -> TokenCorpus:
        """Open a corpus; a missing, corrupt or truncated one is an OryxError naming the path."""
        directory = Path(directory).expanduser()
        path = directory / MANIFEST_FILE
        if not directory.is_dir():
            raise OryxError(f"no corpus at {directory}: not a directory")
        if not path.is_file():
            raise OryxError(f"{directory} is not a prepared corpus: no {MANIFEST_FILE} (run `oryx data prepare`)")
        try:
            manifest = CorpusManifest.model_validate(read_json_object(path))
        except ValidationError as e:
            raise OryxError(f"{path} is not a corpus manifest: {format_validation_error(e, first_only=True)}") from None
        tokenizer = load_tokenizer(directory)
        if tokenizer.info() != manifest.tokenizer.model_dump():
            raise OryxError(f"the tokenizer files in {directory} do not match {MANIFEST_FILE} "
                            f"({tokenizer.info()} != {manifest.tokenizer.model_dump()})")
        corpus = cls(directory, manifest, tokenizer)
        for split in SPLITS:
            corpus.tokens(split)  # checks every token file's size now, not in the middle of training
        return corpus

    def tokens(self, split: Split) -> np.ndarray:
        """[n] the split's token ids: a read-only np.memmap of the manifest's dtype (an empty array for
        an empty split). Documents are separated by eos (each document is followed by one)."""
        if split not in self.manifest.splits:
            raise OryxError(f"unknown split {split!r}; this corpus has {', '.join(self.manifest.splits)}")
        if split not in self._tokens:
            info = self.manifest.splits[split]
            path = self.directory / info.file
            dtype = np.dtype(self.manifest.dtype).newbyteorder("<")
            size = path.stat().st_size if path.is_file() else None
            if size != info.tokens * dtype.itemsize:
                found = "missing" if size is None else f"{size} bytes"
                raise OryxError(f"{path} is truncated or corrupt: {found}, the manifest says "
                                f"{info.tokens} tokens of {self.manifest.dtype}")
            self._tokens[split] = (np.memmap(path, dtype=dtype, mode="r", shape=(info.tokens,))
                                   if info.tokens else np.zeros(0, dtype=dtype))
        return self._tokens[split]

    def documents(self, split: Split | None = None) -> list[dict]:
        """The documents.jsonl records ({"name", "split", "start", "tokens"}) of one split or of all."""
        path = self.directory / DOCUMENTS_FILE
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        except (OSError, json.JSONDecodeError) as e:
            raise OryxError(f"cannot read {path}: {e}") from None
        return [r for r in records if split is None or r["split"] == split]

    def batch(
        self, split: Split, step: int, batch_size: int, seq_len: int, seed: int, *, rank: int = 0, world_size: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows for training: input_ids [B, T] int64 and labels [B, T] int64 (= input_ids,
        the model shifts them; windows cross document boundaries, the eos between documents included).

        The windows depend only on (seed, step, split) — not on earlier calls — so a run resumed at step
        s gets exactly the batch an uninterrupted run got at step s. With world_size > 1 the step draws
        batch_size * world_size windows and rank r takes rows r*B..(r+1)*B-1 (the ranks never overlap,
        and the windows of rank 0 are those of a single-process run).
        """
        tokens = self.tokens(split)
        for name, value, minimum in (("step", step, 0), ("seed", seed, 0), ("batch_size", batch_size, 1),
                                     ("seq_len", seq_len, 1), ("world_size", world_size, 1)):
            if value < minimum:
                raise OryxError(f"{name} must be >= {minimum}, got {value}")
        if not 0 <= rank < world_size:
            raise OryxError(f"rank must be in 0..{world_size - 1}, got {rank}")
        if len(tokens) < seq_len:
            raise OryxError(f"the {split} split of {self.directory} has {len(tokens)} tokens, fewer than seq_len {seq_len}")
        rng = np.random.default_rng([seed, step, _SPLIT_CODE[split]])
        starts = rng.integers(0, len(tokens) - seq_len + 1, size=batch_size * world_size)
        starts = starts[rank * batch_size:(rank + 1) * batch_size]
        x = torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len)].astype(np.int64))  # [B, T]
        return x, x.clone()

    def num_windows(self, seq_len: int, split: Split = "val") -> int:
        """Windows `val_batches` makes of a split: every token after the first is a target exactly once."""
        if seq_len < 2:
            raise OryxError(f"seq_len must be >= 2 for validation windows, got {seq_len}")
        n = len(self.tokens(split))
        return 0 if n < 2 else -(-(n - 1) // (seq_len - 1))

    def val_batches(
        self, batch_size: int, seq_len: int, split: Split = "val", max_windows: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split (or its first `max_windows` windows) in order, deterministic.

        Window i starts at token i * (seq_len - 1), so consecutive windows share one token and every
        token but the split's first is the label of exactly one prediction. Yields input_ids [b, T] and
        labels [b, T] int64 (b <= batch_size for the last batch); labels are -100 at position 0 (no
        prediction targets it) and on the padding of the last, shorter window (padded with pad, else eos).
        """
        if batch_size < 1:
            raise OryxError(f"batch_size must be >= 1, got {batch_size}")
        tokens = self.tokens(split)
        count = self.num_windows(seq_len, split)
        if max_windows is not None:
            count = min(count, max_windows)
        fill = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else self.tokenizer.eos_id
        stride = seq_len - 1
        for first in range(0, count, batch_size):
            rows = range(first, min(first + batch_size, count))
            x = torch.full((len(rows), seq_len), fill, dtype=torch.int64)
            y = torch.full((len(rows), seq_len), IGNORE, dtype=torch.int64)
            for r, w in enumerate(rows):
                window = torch.from_numpy(tokens[w * stride:w * stride + seq_len].astype(np.int64))
                x[r, :len(window)] = window
                y[r, 1:len(window)] = window[1:]
            yield x, y
