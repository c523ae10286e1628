"""Mode schedules and the learned router: which positions run in attention mode.

    from oryx import routing
    s = routing.parse("chunks:128:0.1")
    s.mask(input_ids)            # bool [B, T], True = attention
    str(s) == "chunks:128:0.1"
"""

from oryx.routing.mixed import Mixed  # registers the mixed-training schedule with `parse`
from oryx.routing.router import Learned, Router, RouterConfig  # registers learned:TARGET[:WEIGHT]
from oryx.routing.schedules import (
    NATIVE,
    REGISTRY,
    AllAttention,
    AllLinear,
    Chunks,
    Last,
    Oracle,
    Random,
    Schedule,
    Spans,
    Tokens,
    parse,
    register,
)


# Constructors matching DESIGN.md's names; they go through `parse`, so they validate like specs do.
def all_linear() -> Schedule:
    return parse("all_linear")


def all_attention() -> Schedule:
    return parse("all_attention")


def last(n: int) -> Schedule:
    return parse(f"last:{n}")


def chunks(size: int, ratio: float) -> Schedule:
    return parse(f"chunks:{size}:{ratio}")


def spans(ranges: list[tuple[int, int]]) -> Schedule:
    return parse("spans:" + ",".join(f"{a}-{b}" for a, b in ranges))


def random(ratio: float, chunk: int, seed: int | None = None) -> Schedule:
    return parse(f"random:{ratio}:{chunk}" + ("" if seed is None else f":{seed}"))


def tokens(ids: list[int]) -> Schedule:
    return parse("tokens:" + ",".join(str(int(i)) for i in ids))


def oracle(*roles: str) -> Schedule:
    """`oracle("query")`: attention where the evaluation task asks its questions (an oracle: it reads
    the task's labels)."""
    return parse("oracle:" + ",".join(roles or ("query",)))


__all__ = [
    "NATIVE",
    "REGISTRY",
    "AllAttention",
    "AllLinear",
    "Chunks",
    "Last",
    "Learned",
    "Mixed",
    "Oracle",
    "Random",
    "Router",
    "RouterConfig",
    "Schedule",
    "Spans",
    "Tokens",
    "all_attention",
    "all_linear",
    "chunks",
    "last",
    "oracle",
    "parse",
    "random",
    "register",
    "spans",
    "tokens",
]
