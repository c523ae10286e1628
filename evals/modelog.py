"""What each layer ran at each position during an evaluation: the measured attention fraction, and the
per-token mode log of a sample of examples.

    log = ModeLog(n_layers=2, sample=8)           # keep per-token rows of examples 0..7 of each task
    log.add(Tag("mqar", example=3), tokens, modes, correct, known)
    log.fractions("mqar")    # {'attention_fraction': 0.12, 'attention_fraction/layer_0': 0.12, ...}
    log.frame("mqar")        # pandas DataFrame, one row per (example, request, layer, position)

The attention fraction counts every position the model read, of every sequence (not only the sampled
ones): attention-mode positions over all positions, per layer and over all layers. It is measured from
the `modes` the model returns, never derived from the schedule.

Per-token columns (MODE_LOG_COLUMNS): run, task, example, request (the request's index within its
example, e.g. the answer choice), layer, position, token (the id at that position), mode (True =
attention), router_score (the learned router's score, a logit: attention where it is above the layer's
calibrated threshold; null without a learned router, and in layers it does not route), correct (whether the prediction
made at this position, of the next token, was right; null where the next token has no target), role
(the synthetic task's role of the position, null for text).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

MODE_LOG_COLUMNS: tuple[str, ...] = (
    "run", "task", "example", "request", "layer", "position", "token", "mode", "router_score", "correct", "role",
)


@dataclass(frozen=True)
class Tag:
    """The evaluation item a sequence belongs to."""

    task: str
    example: int
    request: int = 0


@dataclass
class _Record:
    tag: Tag
    tokens: np.ndarray            # [T] int64
    modes: np.ndarray             # [L, T] bool
    correct: np.ndarray | None    # [T] bool
    known: np.ndarray | None      # [T] bool, where `correct` means something
    roles: list[str] | None       # [T]
    scores: np.ndarray | None = None  # [L, T] float32 router scores


class ModeLog:
    """Attention-fraction counters per task and layer, plus the per-token rows of sampled examples."""

    def __init__(self, n_layers: int, sample: int = 0):
        if sample < 0:
            raise ValueError(f"sample must be >= 0 examples, got {sample}")
        self.n_layers = n_layers
        self.sample = sample
        self._attention: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(n_layers, dtype=torch.int64))
        self._positions: dict[str, int] = defaultdict(int)
        self._records: list[_Record] = []

    def wants(self, tag: Tag) -> bool:
        """Whether the per-token rows of this item are kept (its example is among the first `sample`)."""
        return tag.example < self.sample

    def add(
        self,
        tag: Tag,
        tokens: torch.Tensor,
        modes: torch.Tensor,
        correct: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        roles: list[str] | None = None,
        scores: torch.Tensor | None = None,
    ) -> None:
        """One sequence: tokens [T], modes [L, T] bool; correct [T] bool (prediction made at t right),
        known [T] bool (None = every position has a target); roles [T] names; scores [L, T] the learned
        router's (None without one)."""
        if modes.shape != (self.n_layers, tokens.shape[0]):
            raise ValueError(f"modes must be [{self.n_layers}, {tokens.shape[0]}], got {tuple(modes.shape)}")
        self._attention[tag.task] += modes.sum(-1).cpu()
        self._positions[tag.task] += tokens.shape[0]
        if not self.wants(tag):
            return
        numpy = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
        self._records.append(_Record(tag, numpy(tokens).astype(np.int64), numpy(modes).astype(bool),
                                     numpy(correct), numpy(known), roles, numpy(scores)))

    def tasks(self) -> list[str]:
        """Tasks seen so far, in order of first appearance."""
        return list(self._positions)

    def fractions(self, task: str | None = None) -> dict[str, float]:
        """{'attention_fraction': overall, 'attention_fraction/layer_<i>': per layer} over the positions of
        `task` (or of every task); empty when no position was seen."""
        tasks = [task] if task is not None else self.tasks()
        positions = sum(self._positions.get(t, 0) for t in tasks)
        if positions == 0:
            return {}
        attention = sum((self._attention[t] for t in tasks if t in self._attention), torch.zeros(self.n_layers, dtype=torch.int64))
        out = {"attention_fraction": float(attention.sum()) / (positions * self.n_layers)}
        out.update({f"attention_fraction/layer_{i}": float(a) / positions for i, a in enumerate(attention.tolist())})
        return out

    def frame(self, task: str | None = None, run: str = "") -> pd.DataFrame:
        """The per-token rows (MODE_LOG_COLUMNS) of the sampled examples of `task` (or of all tasks)."""
        import pandas as pd

        parts = [self._record_columns(r, run) for r in self._records if task is None or r.tag.task == task]
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _DTYPES.items()})
        columns = {c: np.concatenate([p[c] for p in parts]) for c in MODE_LOG_COLUMNS}
        return pd.DataFrame({c: pd.Series(v).astype(_DTYPES[c]) for c, v in columns.items()})

    def _record_columns(self, r: _Record, run: str) -> dict[str, np.ndarray]:
        """Columns of one sequence, layer-major: L * T rows."""
        L, T = r.modes.shape
        n = L * T
        correct = np.full(n, None, dtype=object)
        if r.correct is not None:
            known = np.ones(T, dtype=bool) if r.known is None else r.known
            per_position = np.where(known, r.correct.astype(bool), None)
            correct = np.tile(per_position, L)
        return {
            "run": np.full(n, run, dtype=object),
            "task": np.full(n, r.tag.task, dtype=object),
            "example": np.full(n, r.tag.example, dtype=np.int64),
            "request": np.full(n, r.tag.request, dtype=np.int64),
            "layer": np.repeat(np.arange(L, dtype=np.int64), T),
            "position": np.tile(np.arange(T, dtype=np.int64), L),
            "token": np.tile(r.tokens, L),
            "mode": r.modes.reshape(-1),
            "router_score": (r.scores.astype(np.float32).reshape(-1) if r.scores is not None
                             else np.full(n, np.nan, dtype=np.float32)),
            "correct": correct,
            "role": np.tile(np.asarray(r.roles, dtype=object), L) if r.roles is not None else np.full(n, None, dtype=object),
        }


_DTYPES = {
    "run": "string", "task": "string", "example": "int64", "request": "int64", "layer": "int64",
    "position": "int64", "token": "int64", "mode": "bool", "router_score": "float32", "correct": "boolean",
    "role": "string",
}
