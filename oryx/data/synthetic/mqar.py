"""Multi-query associative recall (MQAR), as defined by Zoology (Arora, Eyuboglu et al., 2023).

An example opens with `num_kv_pairs` key-value pairs, then repeats every key once, at a distance drawn
from a power law, followed by its value; the model must predict each value from its key. Parameters are
Zoology's `multiquery_ar`: vocab_size, num_kv_pairs, input_seq_len, power_a, random_non_queries.

Token ids (vocab_size V): keys come from 1..V//2-1, values from V//2..V-1 (disjoint halves), and id 0 is
the filler when random_non_queries is False (otherwise filler is uniform over 0..V-1, as in Zoology, so
it may repeat a key or a value as a distractor).

One difference from Zoology, forced by this project's label convention (labels aligned with input_ids):
the position after a query holds the value itself (Zoology leaves filler there and shifts its labels),
so an example reads like text, `k v k v ... k v`, and labels equal input_ids at the answer positions.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator

from oryx.data.synthetic.base import IGNORE, SyntheticBatch, SyntheticConfig

ROLES: tuple[str, ...] = ("filler", "key", "value", "query", "answer")
FILLER, KEY, VALUE, QUERY, ANSWER = range(len(ROLES))

# Rows drawn per block, so that the [rows, V/2] random scores stay small (about 64 MiB of float32).
_BLOCK_ELEMENTS = 1 << 24


class MQARConfig(SyntheticConfig):
    """Zoology's MQAR: `num_kv_pairs` pairs, then their queries at power-law distances.

    Worked example (random_non_queries=False, so the filler is id 0 and every position is readable):

        >>> batch = MQARConfig(vocab_size=12, num_kv_pairs=2, input_seq_len=16, num_examples=1,
        ...                    random_non_queries=False, seed=5).generate()
        >>> batch.input_ids[0].tolist()
        [5, 10, 3, 8, 5, 10, 0, 0, 3, 8, 0, 0, 0, 0, 0, 0]
        >>> batch.labels[0].tolist()
        [-100, -100, -100, -100, -100, 10, -100, -100, -100, 8, -100, -100, -100, -100, -100, -100]
        >>> [ROLES[r] for r in batch.roles[0].tolist()][:10]
        ['key', 'value', 'key', 'value', 'query', 'answer', 'filler', 'filler', 'query', 'answer']
        >>> batch.slices["query_distance"][0].tolist()
        [-1, -1, -1, -1, -1, 4, -1, -1, -1, 6, -1, -1, -1, -1, -1, -1]

    Keys 5 and 3 (ids below 12 // 2 = 6) carry values 10 and 8 (ids from 6 up). Key 5 (position 0)
    is queried at position 4 and its value 10 is the label at position 5; key 3 (position 2) is queried
    at position 8, answer 8 at position 9. The context is 2 * num_kv_pairs = 4 tokens; the query of a
    pair sits at 4 + 2 * gap, with gap in 0..(input_seq_len - 4) // 2 - 1 drawn with probability
    proportional to (gap + 1) ** (power_a - 1), without replacement within an example (Zoology's power
    law: small gaps are the most likely).

    slices: `num_kv_pairs` [N]; `query_distance` [N, T]: at each answer position, how many positions
    back its value was given in the context (= query position - key position); -1 elsewhere.
    """

    ROLES: ClassVar[tuple[str, ...]] = ROLES
    # the model answers a query at the query's own position (it predicts the next token, the value)
    QUESTION_ROLES: ClassVar[tuple[str, ...]] = ("query",)

    vocab_size: int = Field(8192, ge=4, description="token ids 0..vocab_size-1; keys below vocab_size//2, values above")
    input_seq_len: int = Field(64, ge=4, description="positions per example, T")
    num_kv_pairs: int = Field(8, ge=1, description="key-value pairs per example (each queried once)")
    power_a: float = Field(0.01, gt=0, le=1, description="power-law exponent of the query gaps; 1 = uniform")
    random_non_queries: bool = Field(True, description="filler uniform over the vocabulary (else id 0)")
    num_examples: int = Field(256, ge=1, description="examples N")

    @model_validator(mode="after")
    def _fits(self) -> MQARConfig:
        if 4 * self.num_kv_pairs > self.input_seq_len:
            raise ValueError(f"input_seq_len {self.input_seq_len} is too short for {self.num_kv_pairs} pairs "
                             f"(needs 4 * num_kv_pairs = {4 * self.num_kv_pairs}: the context and one query slot each)")
        if self.num_kv_pairs > self.vocab_size // 2 - 1:
            raise ValueError(f"vocab_size {self.vocab_size} has only {self.vocab_size // 2 - 1} key ids "
                             f"(1..vocab_size//2-1) for {self.num_kv_pairs} distinct keys")
        return self

    def gap_probabilities(self) -> torch.Tensor:
        """[space] float64: probability of each query gap 0..space-1 for a single draw (the power law)."""
        space = (self.input_seq_len - 2 * self.num_kv_pairs) // 2
        weights = torch.arange(1, space + 1, dtype=torch.float64) ** (self.power_a - 1)
        return weights / weights.sum()

    def generate(self) -> SyntheticBatch:
        g = self.generator()
        rows_per_block = max(1, _BLOCK_ELEMENTS // (self.vocab_size // 2))
        parts = [self._block(min(rows_per_block, self.num_examples - start), g)
                 for start in range(0, self.num_examples, rows_per_block)]
        ids, labels, roles, distance = (torch.cat(xs) for xs in zip(*parts))
        return SyntheticBatch(
            input_ids=ids, labels=labels, roles=roles.to(torch.uint8),
            slices={"num_kv_pairs": torch.full((self.num_examples,), self.num_kv_pairs, dtype=torch.int64),
                    "query_distance": distance},
            role_names=ROLES, question_roles=self.QUESTION_ROLES,
        )

    def _block(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """n examples -> input_ids, labels, roles, query_distance, each [n, T] int64."""
        V, T, K = self.vocab_size, self.input_seq_len, self.num_kv_pairs
        half, context = V // 2, 2 * K
        keys = _distinct(n, K, 1, half, g)                                    # [n, K]
        values = _distinct(n, K, half, V, g)                                  # [n, K]
        gaps = _power_law_gaps(n, K, self.gap_probabilities(), g)            # [n, K]
        key_pos = torch.arange(0, context, 2).expand(n, K)                    # [n, K]
        query_pos = context + 2 * gaps                                        # [n, K]
        rows = torch.arange(n).unsqueeze(1).expand(n, K)

        ids = torch.zeros(n, T, dtype=torch.int64)
        roles = torch.full((n, T), FILLER, dtype=torch.int64)
        for pos, tokens, role in ((key_pos, keys, KEY), (key_pos + 1, values, VALUE),
                                  (query_pos, keys, QUERY), (query_pos + 1, values, ANSWER)):
            ids[rows, pos] = tokens
            roles[rows, pos] = role
        labels = torch.full((n, T), IGNORE, dtype=torch.int64)
        labels[rows, query_pos + 1] = values
        distance = torch.full((n, T), -1, dtype=torch.int64)
        distance[rows, query_pos + 1] = query_pos - key_pos
        if self.random_non_queries:
            filler = roles == FILLER
            ids[filler] = torch.randint(0, V, (int(filler.sum()),), generator=g)
        return ids, labels, roles, distance


def _distinct(n: int, k: int, low: int, high: int, g: torch.Generator) -> torch.Tensor:
    """[n, k] int64: in each row, k distinct ids drawn uniformly from low..high-1."""
    scores = torch.rand(n, high - low, generator=g)
    return scores.topk(k, dim=1).indices + low


def _power_law_gaps(n: int, k: int, p: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """[n, k] int64: per row, k distinct gaps drawn one after another with probabilities p renormalised
    over the gaps not yet taken (Gumbel top-k: the k largest of log p + Gumbel noise, in order)."""
    u = torch.rand(n, p.numel(), generator=g, dtype=torch.float64).clamp_min(1e-300)
    return (p.log() - (-u.log()).log()).topk(k, dim=1).indices
