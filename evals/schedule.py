"""Which schedule an evaluation runs, checked against the model, and the mode mask of each sequence.

    schedule = resolve_schedule(model.config, "last:32")   # a Schedule, or None for "native"
    mask = sequence_modes(schedule, ids)                    # bool [T] for one unpadded sequence
    modes = batch_modes(schedule, batch, T)                 # bool [N, T] for synthetic examples (oracles too)

A schedule only means something for layers that own both mixers. `native` (or no spec) runs every layer
as the checkpoint does by default: its own mixer in a single-mixer layer, `config.default_schedule` in a
dual one. An explicit schedule on a model whose layers cannot all run it is an OryxError, raised before
anything is evaluated, so a baseline never reports results for a schedule it silently ignored.
"""

from __future__ import annotations

import torch

from oryx.data.synthetic import SyntheticBatch
from oryx.errors import OryxError
from oryx.model import OryxConfig
from oryx.routing import NATIVE, AllAttention, AllLinear, Schedule, parse
from oryx.routing.router import check_router


def resolve_schedule(config: OryxConfig, spec: str | Schedule | None, annotated: bool = False) -> Schedule | None:
    """The schedule to pass to the model, or None to let every layer run its native mode.

    native/None: the config's default schedule when every layer owns two mixers (made explicit, so
    masks are built per sequence and never depend on padding), else None. all_attention/all_linear on
    a model whose layers all own that mixer: None (the same computation). Anything else needs every
    layer to own both mixers. An oracle (`oracle:query`) needs an evaluation whose examples carry a role
    annotation (`annotated=True`: the retrieval tasks); elsewhere it is an OryxError.
    """
    owned = [config.layer_mixers(i) for i in range(config.n_layers)]
    dual = len(config.dual_layers) == config.n_layers
    if spec is None or (isinstance(spec, str) and spec.strip() == NATIVE):
        return parse(config.default_schedule) if dual else None
    schedule = parse(spec)
    if schedule.needs_annotation and not annotated:
        raise OryxError(f"schedule {str(schedule)!r} is an oracle: it reads a task's role annotation, which "
                        "only the retrieval evaluation has (oryx eval retrieval --task mqar|niah)")
    if schedule.needs_hidden:  # learned routing (issue 17): a router calibrated for the fraction, checked now
        check_router(schedule, config.router)
    if dual:
        return schedule
    singles = sorted({m[0] for m in owned if len(m) == 1})
    if len(singles) == 1 and all(len(m) == 1 for m in owned):
        linear_only = singles[0] != "attention"
        if isinstance(schedule, AllLinear if linear_only else AllAttention):
            return None
    raise OryxError(
        f"schedule {str(schedule)!r} cannot run on this {config.family} model: it has layers that own a "
        f"single mixer ({', '.join(singles)}), and a schedule needs layers that own both attention and a "
        f"linear mixer; use schedule={NATIVE}"
    )


def schedule_name(schedule: Schedule | None) -> str:
    """The string logged for a resolved schedule: its spec, or 'native'."""
    return NATIVE if schedule is None else str(schedule)


def batch_modes(schedule: Schedule | None, batch: SyntheticBatch, length: int) -> torch.Tensor | Schedule | None:
    """What the model is given as `modes` for synthetic examples whose first `length` positions are real
    (the rest padding): bool [N, length], None for native modes, or a learned schedule itself (its
    router decides inside the model). An oracle reads the batch's role annotation
    (`SyntheticBatch.oracle_mask`); any other schedule the ids alone (`last:N` counts from `length`)."""
    if schedule is None or schedule.needs_hidden:
        return schedule
    ids = batch.input_ids[:, :length]
    if schedule.needs_annotation:
        return schedule.mask(ids, annotation=batch.oracle_mask(schedule.roles)[:, :length])
    return schedule.mask(ids)


def sequence_modes(schedule: Schedule | None, ids: torch.Tensor | list[int]) -> torch.Tensor | None:
    """bool [T] (True = attention) of one unpadded sequence of T ids at positions 0..T-1, or None
    for native modes. Built per sequence because `last:N` counts from the sequence's own end."""
    if schedule is None:
        return None
    ids = torch.as_tensor(ids, dtype=torch.long)
    return schedule.mask(ids[None], 0)[0]


def stack_modes(masks: list[torch.Tensor | None], length: int, device: torch.device) -> torch.Tensor | None:
    """Per-sequence masks [T_i] -> bool [B, length], right-padded with linear mode (the padding comes
    after every real position, so its mode changes nothing a causal model computes for them)."""
    if masks[0] is None:
        return None
    out = torch.zeros(len(masks), length, dtype=torch.bool)
    for row, mask in enumerate(masks):
        out[row, : len(mask)] = mask
    return out.to(device)
