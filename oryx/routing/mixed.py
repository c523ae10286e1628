"""The mixed-training schedule: every sequence of a batch gets its own random attention:linear mix.

    spec: mixed:CHUNK:P_ALL_ATTN:P_ALL_LIN

Per sequence (row of the batch), one draw decides its kind: all positions in attention mode with
probability P_ALL_ATTN, all in linear mode with probability P_ALL_LIN, otherwise a *mixed* sequence:
a ratio r ~ U(0, 1) is drawn for the row and each chunk of CHUNK positions runs in attention mode with
probability r. So a batch shows the model both pure modes and every mix in between, the strategy PAPER.md
calls mixed training ("a random attention:linear ratio per chunk"; the paper's exact recipe is unknown,
so the three numbers are configurable).

    parse("mixed:4:0.25:0.25").mask(torch.zeros(3, 12, dtype=torch.long))
    # bool [3, 12]; each row constant over positions 0-3, 4-7, 8-11; about a quarter of the rows all
    # True, a quarter all False, the others a random mix of True and False chunks

Draws come from torch's global CPU generator (the trainer seeds it and saves it in checkpoints, so a
resumed run draws what an uninterrupted run drew). Every call draws the same count of numbers for a
given [B, T] whatever the outcome, so the generator's position never depends on the draws themselves.
Like `random:` without a seed, this schedule is for training: decoding step by step would redraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from oryx.errors import OryxError
from oryx.routing.schedules import Schedule, _chunks, _expect, _int, _num, _ratio, register


@register
@dataclass(frozen=True)
class Mixed(Schedule):
    """Per row: all attention (p_all_attention), all linear (p_all_linear), else a random chunk mix."""

    chunk: int
    p_all_attention: float
    p_all_linear: float
    name: ClassVar[str] = "mixed"

    def __post_init__(self) -> None:
        if self.p_all_attention + self.p_all_linear > 1.0:
            raise OryxError(
                f"mixed: P_ALL_ATTN + P_ALL_LIN must be at most 1, got {_num(self.p_all_attention)} + "
                f"{_num(self.p_all_linear)}"
            )

    def mask(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """input_ids [B, T] at absolute positions start.. -> bool [B, T] (True = attention)."""
        B = input_ids.shape[0]
        first, last, chunk_of = _chunks(input_ids, start, self.chunk)
        kind = torch.rand(B)                                   # [B] which of the three kinds
        ratio = torch.rand(B)                                  # [B] attention share of a mixed row
        chunks = torch.rand(B, last - first + 1)               # [B, C] one draw per chunk
        per_chunk = chunks < ratio[:, None]
        all_attention = kind < self.p_all_attention
        all_linear = (kind >= self.p_all_attention) & (kind < self.p_all_attention + self.p_all_linear)
        per_chunk = (per_chunk | all_attention[:, None]) & ~all_linear[:, None]
        return per_chunk.to(input_ids.device)[:, chunk_of]

    def args(self) -> list[str]:
        return [str(self.chunk), _num(self.p_all_attention), _num(self.p_all_linear)]

    @classmethod
    def from_args(cls, args: list[str]) -> Mixed:
        usage = "mixed:CHUNK:P_ALL_ATTN:P_ALL_LIN"
        _expect(args, 3, 3, usage)
        return cls(
            _int(args[0], f"{usage}: CHUNK", 1),
            _ratio(args[1], f"{usage}: P_ALL_ATTN"),
            _ratio(args[2], f"{usage}: P_ALL_LIN"),
        )
