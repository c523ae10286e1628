"""Mode schedules: which positions run in attention mode (True) and which in linear mode (False).

A schedule is a small frozen object with `mask(input_ids, start=0) -> bool [B, T]` and a canonical
string form (`str(schedule)`) that `parse` reads back, so a schedule fits in a config file, a CLI flag,
an lm-eval `model_args` and an MLflow param.

    spec                      meaning
    all_linear                every position in linear mode
    all_attention             every position in attention mode
    last:N                    the last N positions of the ids passed (e.g. only the question)
    chunks:SIZE:RATIO         chunks of SIZE positions, a RATIO of them in attention, spread evenly
    spans:A-B,C-D             positions A..B-1 and C..D-1 (absolute, half-open)
    random:RATIO:CHUNK[:SEED] each chunk of CHUNK positions in attention with probability RATIO;
                              with SEED the draw is fixed per (row, chunk), without it draws from
                              torch's global generator (training: seeded and checkpointed by the trainer)
    tokens:ID,ID              positions whose token id is one of the ids
    learned:TARGET[:WEIGHT]   the model's learned router at attention fraction TARGET (oryx.routing.router;
                              needs_hidden: decided inside the model, layer by layer)
    oracle:query              an ORACLE: attention exactly where the task asks its questions (MQAR's
                              queries, the needle task's question and answer), read from the task's
                              role annotation; `oracle:ROLE,ROLE` names roles. Evaluation only.

`start` is the absolute position of input_ids[:, 0] (a cache's length when decoding), so position-based
schedules (chunks, spans, random) give a decoded token the same mode as the parallel forward would.
`last:N` counts from the end of the ids passed in each call.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import torch

from oryx.errors import OryxError

#: Not a schedule but the spec for "each layer runs its own mixers" (`model(..., modes=None)`): what a
#: single-mixer baseline runs, and `config.default_schedule` for layers that own two. Configs, commands and
#: evaluation accept it wherever they take a schedule spec.
NATIVE = "native"


class Schedule(ABC):
    """Base class: subclasses are frozen dataclasses registered under `name`."""

    name: ClassVar[str]
    #: True for schedules that need the model's hidden states (a learned router); those are resolved
    #: inside the model, layer by layer, instead of through `mask`.
    needs_hidden: ClassVar[bool] = False
    #: True for oracles: their mask is read from an evaluation task's role annotation (`Oracle`), so
    #: only an evaluation that has one can run them (not training, lm-eval or generation).
    needs_annotation: ClassVar[bool] = False

    @abstractmethod
    def mask(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """input_ids: [B, T] integer ids at absolute positions start..start+T-1 -> bool [B, T]."""

    @abstractmethod
    def args(self) -> list[str]:
        """The spec's fields after the name, as strings."""

    @classmethod
    @abstractmethod
    def from_args(cls, args: list[str]) -> Schedule:
        """Build from the spec's fields after the name; raise OryxError naming a bad field."""

    def __str__(self) -> str:
        return ":".join([self.name, *self.args()])


def _positions(input_ids: torch.Tensor, start: int) -> torch.Tensor:
    """[T] absolute positions of the columns of input_ids."""
    return torch.arange(start, start + input_ids.shape[1], device=input_ids.device)


def _chunks(input_ids: torch.Tensor, start: int, chunk: int) -> tuple[int, int, torch.Tensor]:
    """(first, last) chunk index the positions of input_ids touch, and chunk_of [T]: each position's
    chunk counted from `first`, on input_ids' device (per-chunk draws are made on the host, moved to the
    device whole, then indexed there: no device-to-host copy)."""
    T = input_ids.shape[1]
    first, last = start // chunk, (start + T - 1) // chunk
    return first, last, torch.div(_positions(input_ids, start), chunk, rounding_mode="floor") - first


def _expect(args: list[str], lo: int, hi: int, usage: str) -> None:
    if not lo <= len(args) <= hi:
        raise OryxError(f"schedule {usage!r} takes {lo if lo == hi else f'{lo} to {hi}'} field(s), got {len(args)}")


def _int(text: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise OryxError(f"{what} must be an integer, got {text!r}") from None
    if value < minimum:
        raise OryxError(f"{what} must be >= {minimum}, got {value}")
    return value


def _ratio(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OryxError(f"{what} must be a number between 0 and 1, got {text!r}") from None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise OryxError(f"{what} must be between 0 and 1, got {text!r}")
    return value


def _num(x: float) -> str:
    """Shortest string that reads back as the same float (0.1 -> '0.1', 1.0 -> '1')."""
    return repr(int(x)) if float(x).is_integer() else repr(float(x))


class _Uniform(Schedule):
    """Every position in one mode (`attention`)."""

    attention: ClassVar[bool]

    def mask(self, input_ids, start=0):
        return torch.full(input_ids.shape, self.attention, dtype=torch.bool, device=input_ids.device)

    def args(self):
        return []

    @classmethod
    def from_args(cls, args):
        _expect(args, 0, 0, cls.name)
        return cls()


@dataclass(frozen=True)
class AllLinear(_Uniform):
    name: ClassVar[str] = "all_linear"
    attention: ClassVar[bool] = False


@dataclass(frozen=True)
class AllAttention(_Uniform):
    name: ClassVar[str] = "all_attention"
    attention: ClassVar[bool] = True


@dataclass(frozen=True)
class Last(Schedule):
    """The last `n` positions of the ids passed run in attention mode."""

    n: int
    name: ClassVar[str] = "last"

    def mask(self, input_ids, start=0):
        T = input_ids.shape[1]
        row = torch.arange(T, device=input_ids.device) >= T - self.n
        return row.expand(input_ids.shape).clone()

    def args(self):
        return [str(self.n)]

    @classmethod
    def from_args(cls, args):
        _expect(args, 1, 1, "last:N")
        return cls(_int(args[0], "last:N: N"))


@dataclass(frozen=True)
class Chunks(Schedule):
    """Chunks of `size` positions, a `ratio` of them in attention mode, evenly spread from chunk 0:
    chunk c is in attention mode when ceil((c+1)·ratio) > ceil(c·ratio) (ratio 0.25: chunks 0, 4, 8...).
    Exact rational arithmetic, so the pattern never depends on float rounding."""

    size: int
    ratio: float
    name: ClassVar[str] = "chunks"

    def mask(self, input_ids, start=0):
        frac = Fraction(self.ratio).limit_denominator(1_000_000)
        c = torch.div(_positions(input_ids, start), self.size, rounding_mode="floor")
        ceil = lambda n: -torch.div(-n * frac.numerator, frac.denominator, rounding_mode="floor")  # noqa: E731
        row = ceil(c + 1) > ceil(c)
        return row.expand(input_ids.shape).clone()

    def args(self):
        return [str(self.size), _num(self.ratio)]

    @classmethod
    def from_args(cls, args):
        _expect(args, 2, 2, "chunks:SIZE:RATIO")
        return cls(_int(args[0], "chunks:SIZE:RATIO: SIZE", 1), _ratio(args[1], "chunks:SIZE:RATIO: RATIO"))


@dataclass(frozen=True)
class Spans(Schedule):
    """Absolute half-open position spans [start, end) run in attention mode."""

    spans: tuple[tuple[int, int], ...]
    name: ClassVar[str] = "spans"

    def mask(self, input_ids, start=0):
        pos = _positions(input_ids, start)
        row = torch.zeros_like(pos, dtype=torch.bool)
        for a, b in self.spans:
            row |= (pos >= a) & (pos < b)
        return row.expand(input_ids.shape).clone()

    def args(self):
        return [",".join(f"{a}-{b}" for a, b in self.spans)]

    @classmethod
    def from_args(cls, args):
        _expect(args, 1, 1, "spans:A-B,C-D")
        spans = []
        for part in args[0].split(","):
            bounds = part.split("-")
            if len(bounds) != 2:
                raise OryxError(f"spans: each span is START-END, got {part!r}")
            a, b = (_int(x, f"spans: bound in {part!r}") for x in bounds)
            if a >= b:
                raise OryxError(f"spans: START must be below END, got {part!r}")
            spans.append((a, b))
        return cls(tuple(spans))


@dataclass(frozen=True)
class Random(Schedule):
    """Each chunk of `chunk` positions runs in attention mode with probability `ratio`."""

    ratio: float
    chunk: int
    seed: int | None = None
    name: ClassVar[str] = "random"

    def mask(self, input_ids, start=0):
        B = input_ids.shape[0]
        first, last, chunk_of = _chunks(input_ids, start, self.chunk)
        if self.seed is None:
            draws = torch.rand(B, last - first + 1)
        else:
            # one generator per row, drawn from chunk 0: the draw of a chunk does not depend on how
            # many positions a call covers, so decoding step by step sees the parallel forward's modes
            rows = []
            for b in range(B):
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + b)
                rows.append(torch.rand(last + 1, generator=gen)[first:])
            draws = torch.stack(rows)
        return (draws < self.ratio).to(input_ids.device)[:, chunk_of]

    def args(self):
        return [_num(self.ratio), str(self.chunk)] + ([] if self.seed is None else [str(self.seed)])

    @classmethod
    def from_args(cls, args):
        _expect(args, 2, 3, "random:RATIO:CHUNK[:SEED]")
        seed = _int(args[2], "random:RATIO:CHUNK:SEED: SEED") if len(args) == 3 else None
        return cls(_ratio(args[0], "random: RATIO"), _int(args[1], "random: CHUNK", 1), seed)


@dataclass(frozen=True)
class Tokens(Schedule):
    """Positions whose token id is in `ids` run in attention mode."""

    ids: tuple[int, ...]
    name: ClassVar[str] = "tokens"

    def mask(self, input_ids, start=0):
        return torch.isin(input_ids, torch.tensor(self.ids, device=input_ids.device))

    def args(self):
        return [",".join(str(i) for i in self.ids)]

    @classmethod
    def from_args(cls, args):
        _expect(args, 1, 1, "tokens:ID,ID")
        return cls(tuple(_int(x, "tokens: id") for x in args[0].split(",")))


#: `oracle:query`: the task's question positions, whatever the task calls them (oryx.data.synthetic).
QUERY = "query"


@dataclass(frozen=True)
class Oracle(Schedule):
    """Attention exactly at the positions an evaluation task marks with `roles` (`oracle:query`: where
    the task asks its questions; `oracle:key,value`: named roles of the task).

    An ORACLE: it reads the task's labels (its role annotation), which no model sees in real text. It is
    the upper bound that fixed schedules and learned routers are measured against, and every table and
    figure labels it as one. The evaluation passes the annotation: `mask(ids, annotation=bool [B, T])`,
    made by `SyntheticBatch.oracle_mask(roles)`; without it there is nothing to read, an OryxError.
    """

    roles: tuple[str, ...]
    name: ClassVar[str] = "oracle"
    needs_annotation: ClassVar[bool] = True

    def mask(self, input_ids, start=0, annotation: torch.Tensor | None = None):
        if annotation is None:
            raise OryxError(f"schedule {str(self)!r} is an oracle: it reads an evaluation task's role "
                            "annotation, which only `oryx eval retrieval` (mqar, niah) has")
        if annotation.shape != input_ids.shape:
            raise OryxError(f"{self}: annotation of shape {tuple(annotation.shape)} for ids of shape "
                            f"{tuple(input_ids.shape)}")
        return annotation.to(device=input_ids.device, dtype=torch.bool)

    def args(self):
        return [",".join(self.roles)]

    @classmethod
    def from_args(cls, args):
        _expect(args, 1, 1, "oracle:ROLE[,ROLE]")
        roles = tuple(r.strip() for r in args[0].split(","))
        if not all(roles):
            raise OryxError(f"oracle: empty role name in {args[0]!r}; e.g. oracle:query or oracle:key,value")
        return cls(roles)


REGISTRY: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (AllLinear, AllAttention, Last, Chunks, Spans, Random, Tokens, Oracle)
}


def register(cls: type[Schedule]) -> type[Schedule]:
    """Class decorator adding a schedule kind (e.g. the learned router) to `parse`."""
    REGISTRY[cls.name] = cls
    return cls


def parse(spec: str | Schedule) -> Schedule:
    """A schedule from its string form (a Schedule passes through unchanged)."""
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise OryxError(f"a schedule spec must be a non-empty string, got {spec!r}")
    name, *args = spec.strip().split(":")
    if name not in REGISTRY:
        raise OryxError(f"unknown schedule {name!r} in {spec!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].from_args(args)
