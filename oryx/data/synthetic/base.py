"""What every synthetic task shares: the batch it returns and the seeded config it is made from."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from oryx.errors import OryxError

if TYPE_CHECKING:
    from oryx.data.tokenizers import Tokenizer

IGNORE = -100  # label of positions without a target (PyTorch's cross_entropy ignore_index)


@dataclass
class SyntheticBatch:
    """N examples of one task, T positions each.

    input_ids: [N, T] int64 token ids.
    labels:    [N, T] int64, aligned with input_ids (Hugging Face convention): labels[:, t] is the target
               of the prediction made at position t-1; -100 where there is none. Wherever a label is set
               it equals input_ids at the same position (the answer is in the sequence, as in text).
    roles:     [N, T] uint8, the index in `role_names` of each position's role.
    slices:    per-example [N] or per-position [N, T] tensors to group accuracy by (task-specific).
    role_names: the task's ROLES tuple.
    question_roles: the roles at which the task asks its questions (its QUESTION_ROLES): where the
               query-aligned oracle (`oracle:query`) puts attention.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    roles: torch.Tensor
    slices: dict[str, torch.Tensor] = field(default_factory=dict)
    role_names: tuple[str, ...] = ()
    question_roles: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, rows) -> SyntheticBatch:
        """The examples `rows` (an int, slice, list or index tensor) as a batch of their own."""
        if isinstance(rows, int):
            rows = [rows]
        return SyntheticBatch(self.input_ids[rows], self.labels[rows], self.roles[rows],
                              {k: v[rows] for k, v in self.slices.items()}, self.role_names, self.question_roles)

    @staticmethod
    def concat(batches: list[SyntheticBatch]) -> SyntheticBatch:
        """The examples of several batches of one task (e.g. one per swept config), in order. They must
        have the same length T and the same slices; OryxError otherwise."""
        if not batches:
            raise OryxError("no batches to concatenate")
        lengths = sorted({b.input_ids.shape[1] for b in batches})
        if len(lengths) > 1:
            raise OryxError(f"cannot concatenate batches of different lengths {lengths}")
        if len({(b.role_names, b.question_roles, tuple(b.slices)) for b in batches}) > 1:
            raise OryxError("cannot concatenate batches of different tasks (roles or slices differ)")
        cat = lambda name: torch.cat([getattr(b, name) for b in batches])  # noqa: E731
        slices = {k: torch.cat([b.slices[k] for b in batches]) for k in batches[0].slices}
        return SyntheticBatch(cat("input_ids"), cat("labels"), cat("roles"), slices, batches[0].role_names,
                              batches[0].question_roles)

    def role_mask(self, role: str) -> torch.Tensor:
        """bool [N, T]: positions whose role is `role`."""
        if role not in self.role_names:
            raise OryxError(f"unknown role {role!r}; this task's roles: {', '.join(self.role_names)}")
        return self.roles == self.role_names.index(role)

    def oracle_mask(self, roles: tuple[str, ...]) -> torch.Tensor:
        """bool [N, T]: positions of any of `roles`, where 'query' stands for the task's question roles
        (`question_roles`): the annotation an `oracle:` schedule reads (oryx.routing.Oracle)."""
        names = [name for role in roles for name in (self.question_roles if role == "query" else (role,))]
        mask = torch.zeros_like(self.roles, dtype=torch.bool)
        for name in names:
            mask |= self.role_mask(name)
        return mask

    @property
    def answer_mask(self) -> torch.Tensor:
        """bool [N, T]: positions that carry a label (the answers)."""
        return self.labels != IGNORE


class SyntheticConfig(BaseModel):
    """Base of the task configs: seeded, typed, unknown keys rejected. `generate()` draws only from a
    generator seeded with `seed`, never from torch's or numpy's global random state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ROLES: ClassVar[tuple[str, ...]]
    #: the roles at which the task asks its questions: where `oracle:query` puts attention
    QUESTION_ROLES: ClassVar[tuple[str, ...]]

    seed: int = Field(0, ge=0, description="seed of the task's own random generator")

    @abstractmethod
    def generate(self) -> SyntheticBatch:
        """The task's examples, identical for identical configs."""

    def tokenizer(self) -> Tokenizer | None:
        """The tokenizer whose ids the examples are (None: bare token ids, no text)."""
        return None

    def generator(self) -> torch.Generator:
        """A CPU torch generator seeded with `seed` (the task's only source of randomness)."""
        return torch.Generator().manual_seed(self.seed)

