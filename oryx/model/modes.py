"""Turning what a caller passes as `modes` into one bool mask per layer, and checking model inputs."""

from __future__ import annotations

import torch

from oryx.errors import OryxError
from oryx.model.config import OryxConfig
from oryx.routing import Schedule, parse

Modes = torch.Tensor | Schedule | str | None


def check_input_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """input_ids must be an integer tensor [B, T], T >= 1, every id in 0..vocab_size-1."""
    if not isinstance(input_ids, torch.Tensor):
        raise OryxError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise OryxError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    if input_ids.dim() != 2 or input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
        raise OryxError(f"input_ids must be [batch, length] with both >= 1, got shape {tuple(input_ids.shape)}")
    lo, hi = torch.stack(torch.aminmax(input_ids)).tolist()                  # one device read
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise OryxError(f"token id {bad} is out of range: the vocabulary has ids 0..{vocab_size - 1}")


def resolve_modes(
    config: OryxConfig, modes: Modes, input_ids: torch.Tensor, start: int = 0
) -> torch.Tensor:
    """A bool mask [L, B, T] (True = attention) for the T positions of `input_ids`.

    modes: None (each layer's own mixer; layers with two use `config.default_schedule`), a schedule
    or its string, or a bool tensor [B, T] (all layers) or [L, B, T]. A schedule that `needs_hidden`
    (learned routing) leaves the rows of dual layers False for the model to fill. A layer that owns one
    mixer always runs it; an explicit mode mask that asks it for the other mode is a ValueError.
    """
    L = config.n_layers
    B, T = input_ids.shape
    explicit = modes is not None
    if isinstance(modes, torch.Tensor):
        if modes.dtype != torch.bool:
            raise OryxError(f"modes must be a bool tensor (True = attention), got {modes.dtype}")
        if modes.shape == (B, T):
            modes = modes.expand(L, B, T)
        elif modes.shape != (L, B, T):
            raise OryxError(
                f"modes must be [batch, length] = [{B}, {T}] or [layers, batch, length] = [{L}, {B}, {T}], "
                f"got {tuple(modes.shape)}"
            )
        mask = modes.to(input_ids.device)
    else:
        schedule = parse(config.default_schedule if modes is None else modes)
        if schedule.needs_hidden:  # a learned router fills the dual layers' rows in the forward
            mask = torch.zeros(L, B, T, dtype=torch.bool, device=input_ids.device)
        else:
            mask = schedule.mask(input_ids, start).expand(L, B, T)
    layers = []
    for i in range(L):
        owned = config.layer_mixers(i)
        if len(owned) == 2:
            layers.append(mask[i])
            continue
        native = owned[0] == "attention"
        # only an explicit mask can ask a single-mixer layer for the other mode (a device read, so only then)
        if explicit and (wrong := int((mask[i] != native).sum())):
            other = "linear" if native else "attention"
            raise OryxError(
                f"layer {i} owns only {owned[0]!r}, but the modes put {wrong} position(s) in {other} mode"
            )
        layers.append(torch.full((B, T), native, dtype=torch.bool, device=input_ids.device))
    return torch.stack(layers)
