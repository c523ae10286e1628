"""Needle in a haystack / passkey retrieval (after RULER's niah tasks).

A needle (a key, then its value) sits at a chosen depth of a haystack of filler; at the end a question
repeats the key and the answer is the value. The model must copy the value across the haystack.

    [filler ... | needle: key value | ... filler | question: marker key | answer: value] [pad ...]

Depth is a fraction in [0, 1]: the needle starts after floor(depth * H + 0.5) of the example's H filler
tokens (0 = at the very start, 1 = right before the question). An example of context_len C has
C - (2 * key_len + 2 * value_len + 1) filler tokens in random mode.

Filler, random mode (filler="random"): token ids of vocab_size V are laid out as
    0 pad, 1 question marker, keys 2..2+q-1, values 2+q..2+2q-1, filler 2+2q..V-1, with q = (V - 2) // 4,
so a key or value token never appears in the filler: every example has exactly one right answer.
Filler, corpus mode (filler=DIR, a prepared corpus): the haystack is a window of that corpus's tokens
(seeded offset into `filler_split`) and the needle and question are text in the corpus's tokenizer,
RULER's passkey wording: " The pass key for <key> is <value>. Remember it. " ... "\nWhat is the pass
key for <key>? The pass key is " then the answer "<value>". In corpus mode the key is `key_len` random
lowercase letters and the value `value_len` random digits; the vocabulary is the tokenizer's.
"""

from __future__ import annotations

import itertools
import string
from functools import cached_property
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from oryx.data.synthetic.base import IGNORE, SyntheticBatch, SyntheticConfig
from oryx.errors import OryxError

ROLES: tuple[str, ...] = ("filler", "needle", "needle_key", "needle_value", "question", "answer", "pad")
FILLER, NEEDLE, NEEDLE_KEY, NEEDLE_VALUE, QUESTION, ANSWER, PAD = range(len(ROLES))
PAD_ID, QUESTION_ID = 0, 1  # random mode's reserved ids

# Corpus mode's wording (RULER's passkey task); each piece is encoded on its own, so roles stay exact.
NEEDLE_TEXT = (" The pass key for ", " is ", ". Remember it. ")
QUESTION_TEXT = ("\nWhat is the pass key for ", "? The pass key is ")

Segment = tuple[list[int], int]  # token ids, role


class NIAHConfig(SyntheticConfig):
    """A passkey at `depth` of a `context_len` context; sweeps take lists of both (one grid cell each).

    Worked example (random mode, vocabulary 26: pad 0, question 1, keys 2..7, values 8..13, filler
    14..25):

        >>> batch = NIAHConfig(vocab_size=26, context_len=15, depth=0.5, key_len=2, value_len=2,
        ...                    num_examples=1, seed=0).generate()
        >>> batch.input_ids[0].tolist()
        [21, 17, 21, 4, 5, 13, 8, 21, 15, 17, 1, 4, 5, 13, 8]
        >>> batch.labels[0].tolist()
        [-100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, 13, 8]
        >>> [ROLES[r] for r in batch.roles[0].tolist()]  # doctest: +NORMALIZE_WHITESPACE
        ['filler', 'filler', 'filler', 'needle_key', 'needle_key', 'needle_value', 'needle_value',
         'filler', 'filler', 'filler', 'question', 'question', 'question', 'answer', 'answer']

    15 - (2 * 2 + 2 * 2 + 1) = 6 filler tokens; depth 0.5 puts the needle (key 4 5, value 13 8) after
    three of them. The question (marker 1, key 4 5) ends the context, and the labels at the two answer
    positions are the value 13 8.

    slices: `depth` [N] float (the fraction asked for), `context_len` [N] int64 (positions before the
    padding), `needle_start` [N] int64 (position of the needle's first token).
    """

    ROLES: ClassVar[tuple[str, ...]] = ROLES
    # the question span, and the answer span whose positions predict the value's later tokens
    QUESTION_ROLES: ClassVar[tuple[str, ...]] = ("question", "answer")

    context_len: list[int] = Field([256], description="positions per example (one value or a list to sweep)")
    depth: list[float] = Field([0.5], description="needle depth, fraction of the filler before it (value or list)")
    key_len: int = Field(2, ge=1, description="key tokens (random mode) or letters (corpus mode)")
    value_len: int = Field(4, ge=1, description="value tokens (random mode) or digits (corpus mode)")
    vocab_size: int = Field(256, ge=10, description="random mode's vocabulary (corpus mode: the tokenizer's)")
    filler: str = Field("random", description="'random', or a prepared corpus directory whose text is the haystack")
    filler_split: Literal["train", "val"] = Field("val", description="split of the corpus the haystack is cut from")
    num_examples: int = Field(16, ge=1, description="examples per (context_len, depth) cell")

    @field_validator("context_len", "depth", mode="before")
    @classmethod
    def _listify(cls, value):
        return value if isinstance(value, (list, tuple)) else [value]

    @field_validator("context_len")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError(f"context lengths must be >= 1, got {value}")
        return value

    @field_validator("depth")
    @classmethod
    def _fraction(cls, value: list[float]) -> list[float]:
        if not value or not all(0.0 <= d <= 1.0 for d in value):
            raise ValueError(f"depths must be fractions in [0, 1], got {value}")
        return value

    @model_validator(mode="after")
    def _fits(self) -> NIAHConfig:
        if self.filler == "random":
            shortest = 2 * self.key_len + 2 * self.value_len + 1
            if min(self.context_len) < shortest:
                raise ValueError(f"context_len {min(self.context_len)} leaves no room for the needle, question "
                                 f"and answer ({shortest} positions)")
        return self

    @cached_property
    def _corpus(self):
        from oryx.data.corpus import TokenCorpus

        corpus = TokenCorpus.open(self.filler)
        if "vocab_size" in self.model_fields_set and self.vocab_size != corpus.tokenizer.vocab_size:
            raise OryxError(f"vocab_size {self.vocab_size} differs from the filler corpus's tokenizer "
                            f"({corpus.tokenizer.vocab_size}); leave vocab_size unset in corpus mode")
        return corpus

    def tokenizer(self):
        """The filler corpus's tokenizer in corpus mode; None in random mode (bare ids)."""
        return None if self.filler == "random" else self._corpus.tokenizer

    @property
    def ranges(self) -> dict[str, range]:
        """Random mode's id ranges: 'key', 'value', 'filler' (ids 0 and 1 are pad and question)."""
        q = (self.vocab_size - 2) // 4
        return {"key": range(2, 2 + q), "value": range(2 + q, 2 + 2 * q), "filler": range(2 + 2 * q, self.vocab_size)}

    def generate(self) -> SyntheticBatch:
        g = self.generator()
        cells = [(c, d) for c, d in itertools.product(self.context_len, self.depth) for _ in range(self.num_examples)]
        T = max(self.context_len)
        N = len(cells)
        ids = torch.full((N, T), self._pad_id(), dtype=torch.int64)
        roles = torch.full((N, T), PAD, dtype=torch.int64)
        needle_start = torch.full((N,), -1, dtype=torch.int64)
        for row, (context_len, depth) in enumerate(cells):
            segments = self._example(context_len, depth, g)
            position = 0
            for tokens, role in segments:
                if role in (NEEDLE, NEEDLE_KEY) and needle_start[row] < 0:
                    needle_start[row] = position
                ids[row, position:position + len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
                roles[row, position:position + len(tokens)] = role
                position += len(tokens)
        labels = torch.where(roles == ANSWER, ids, IGNORE)
        return SyntheticBatch(
            input_ids=ids, labels=labels, roles=roles.to(torch.uint8), role_names=ROLES,
            question_roles=self.QUESTION_ROLES,
            slices={"depth": torch.tensor([d for _, d in cells], dtype=torch.float64),
                    "context_len": torch.tensor([c for c, _ in cells], dtype=torch.int64),
                    "needle_start": needle_start},
        )

    def _pad_id(self) -> int:
        if self.filler == "random":
            return PAD_ID
        tok = self._corpus.tokenizer
        return tok.pad_id if tok.pad_id is not None else tok.eos_id

    def _example(self, context_len: int, depth: float, g: torch.Generator) -> list[Segment]:
        """The segments of one example, in order; their lengths add up to context_len."""
        needle, question, answer = (self._random_needle if self.filler == "random" else self._text_needle)(g)
        haystack = context_len - sum(len(t) for t, _ in [*needle, *question, *answer])
        if haystack < 0:
            raise OryxError(f"context_len {context_len} is too short for the needle, question and answer "
                            f"({context_len - haystack} tokens)")
        filler = self._filler(haystack, g)
        cut = int(depth * haystack + 0.5)  # round half up (Python's round() would go to even)
        return [(filler[:cut], FILLER), *needle, (filler[cut:], FILLER), *question, *answer]

    def _random_needle(self, g: torch.Generator) -> tuple[list[Segment], list[Segment], list[Segment]]:
        r = self.ranges
        key = _draw(r["key"], self.key_len, g)
        value = _draw(r["value"], self.value_len, g)
        return [(key, NEEDLE_KEY), (value, NEEDLE_VALUE)], [([QUESTION_ID, *key], QUESTION)], [(value, ANSWER)]

    def _text_needle(self, g: torch.Generator) -> tuple[list[Segment], list[Segment], list[Segment]]:
        enc = self._corpus.tokenizer.encode
        key = "".join(string.ascii_lowercase[i] for i in _draw(range(26), self.key_len, g))
        value = "".join(string.digits[i] for i in _draw(range(10), self.value_len, g))
        needle = [(enc(NEEDLE_TEXT[0]), NEEDLE), (enc(key), NEEDLE_KEY), (enc(NEEDLE_TEXT[1]), NEEDLE),
                  (enc(value), NEEDLE_VALUE), (enc(NEEDLE_TEXT[2]), NEEDLE)]
        question = [(enc(QUESTION_TEXT[0]) + enc(key) + enc(QUESTION_TEXT[1]), QUESTION)]
        return needle, question, [(enc(value), ANSWER)]

    def _filler(self, n: int, g: torch.Generator) -> list[int]:
        """n filler ids: random ids of the filler range, or a window of the corpus split at a seeded offset."""
        if self.filler == "random":
            return _draw(self.ranges["filler"], n, g)
        tokens = self._corpus.tokens(self.filler_split)
        if len(tokens) < n:
            raise OryxError(f"the {self.filler_split} split of {self.filler} has {len(tokens)} tokens, "
                            f"fewer than the {n} filler tokens an example needs")
        start = int(torch.randint(0, len(tokens) - n + 1, (1,), generator=g))
        return tokens[start:start + n].astype("int64").tolist()


def _draw(ids: range, n: int, g: torch.Generator) -> list[int]:
    """n ids drawn uniformly (with replacement) from `ids`."""
    return (torch.randint(0, len(ids), (n,), generator=g) + ids.start).tolist()
