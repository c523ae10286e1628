"""What the trainer reads: a batch for every step and a fixed validation set, from a corpus or a task.

Both sources are pure functions of (seed, step): a resumed run at step s gets the batch an uninterrupted
run got, and the global batch is the same whatever the number of processes (each takes its rows).

    data = open_data(config.data, seed=0)
    x, y = data.batch(step=7, batch_size=16)      # [16, T] input_ids and labels (HF-aligned)
    for x, y in data.val_batches(8): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from oryx.data.corpus import TokenCorpus
from oryx.data.prepare import prepare
from oryx.data.synthetic import SyntheticConfig
from oryx.data.tokenizers import Tokenizer
from oryx.errors import OryxError
from oryx.training.config import CorpusData, DataSection

Batch = tuple[torch.Tensor, torch.Tensor]  # input_ids [B, T], labels [B, T] (-100 = no target)


class CorpusSource:
    """Random windows of a prepared corpus; validation = the first `val_windows` windows of its val split."""

    def __init__(self, section: CorpusData, seed: int):
        self.corpus = TokenCorpus.open(section.path)
        self.section, self.seed = section, seed
        self.tokenizer: Tokenizer | None = self.corpus.tokenizer
        self.vocab_size = self.corpus.tokenizer.vocab_size
        self.seq_len = section.seq_len
        if self.corpus.num_windows(self.seq_len, "val") == 0:
            raise OryxError(f"the val split of {section.path} is empty: prepare it with a val_fraction > 0")

    def batch(self, step: int, batch_size: int) -> Batch:
        return self.corpus.batch("train", step, batch_size, self.seq_len, self.seed)

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        return self.corpus.val_batches(batch_size, self.seq_len, max_windows=self.section.val_windows)


class TaskSource:
    """A synthetic task: step s trains on a fresh draw seeded by (seed, s); validation is one draw
    from a seed no training step uses."""

    def __init__(self, task: SyntheticConfig, val_examples: int, seed: int):
        self.task, self.seed = task, seed
        # examples one generate() makes per num_examples: the cells of a grid (NIAH context lengths x depths)
        self.cells = len(task.model_copy(update={"num_examples": 1}).generate().input_ids)
        self.tokenizer = task.tokenizer()
        self.vocab_size = self.tokenizer.vocab_size if self.tokenizer is not None else task.vocab_size
        self.val = self._draw(val_examples, _derive(seed, 0, stream=1))
        self.seq_len = self.val[0].shape[1]

    def _draw(self, n: int, seed: int) -> Batch:
        """n examples from the task seeded with `seed`. A task that makes one example per cell of a grid
        (context lengths x depths) is asked for ceil(n / cells) per cell, then n rows are picked by the same
        seed (not n per cell: that drew, and threw away, cells - 1 batches every step)."""
        per_cell = -(-n // self.cells)
        batch = self.task.model_copy(update={"seed": seed, "num_examples": per_cell}).generate()
        x, y = batch.input_ids, batch.labels
        if len(x) > n:
            rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
            x, y = x[rows], y[rows]
        return x, y

    def batch(self, step: int, batch_size: int) -> Batch:
        return self._draw(batch_size, _derive(self.seed, step, stream=0))

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        x, y = self.val
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]


def _derive(seed: int, step: int, stream: int) -> int:
    """A task seed for (run seed, step, stream): well mixed, so nearby steps are unrelated draws."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def ensure_corpus(section: DataSection) -> None:
    """Prepare the corpus of a corpus section when its directory does not exist and a recipe is given
    (call on one process only; the others wait)."""
    if not isinstance(section, CorpusData) or Path(section.path).exists():
        return
    if section.prepare is None:
        raise OryxError(f"data.path {section.path} does not exist; run `oryx data prepare ... --out "
                        f"{section.path}` or give data.prepare in the config")
    spec = section.prepare
    prepare(spec.recipe, section.path, spec.tokenizer, spec.val_fraction, spec.seed, **spec.options)


def open_data(section: DataSection, seed: int) -> CorpusSource | TaskSource:
    """The source of a data section (the corpus must exist: see `ensure_corpus`)."""
    if isinstance(section, CorpusData):
        return CorpusSource(section, seed)
    return TaskSource(section.task, section.val_examples, seed)
