"""Learned routing inside the model: the router's decisions layer by layer in a forward, and the
calibration of its thresholds on held-out data (the router itself: oryx.routing.router)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from oryx.errors import OryxError
from oryx.routing import Learned, Schedule, parse
from oryx.routing.router import Decision, budget_loss, check_router, threshold_for

if TYPE_CHECKING:
    from oryx.model.modeling import OryxForCausalLM


def learned_schedule(default: str, modes) -> Learned | None:
    """The learned schedule among a forward's `modes` (None = `default`, the config's), else None."""
    if isinstance(modes, torch.Tensor):
        return None
    schedule: Schedule = parse(default if modes is None else modes)
    return schedule if isinstance(schedule, Learned) else None


class Routing:
    """One forward's learned routing: each routed layer's decision from its input, the scores kept
    ([L, B, T] float32, NaN in layers the router does not route) and the budget loss in training."""

    def __init__(self, model: OryxForCausalLM, schedule: Learned, shape: tuple[int, int], device: torch.device):
        check_router(schedule, model.config.router, inference=not model.training)
        self.router, self.schedule, self.training = model.router, schedule, model.training
        dtype = torch.promote_types(model.embed.weight.dtype, torch.float32)
        self.scores = torch.full((model.config.n_layers, *shape), float("nan"), dtype=dtype, device=device)
        self.probs: list[torch.Tensor] = []

    def routes(self, layer: int) -> bool:
        return layer in self.router.index

    def __call__(self, x: torch.Tensor, layer: int) -> Decision:
        """x [B, T, d]: the input of `layer` -> its decision (scores recorded)."""
        decision = self.router.decide(x, layer, self.schedule.target, self.training)
        self.scores[layer] = decision.scores.detach()
        self.probs.append(decision.probs)
        return decision

    def loss(self) -> torch.Tensor | None:
        """WEIGHT * budget loss of this forward in training (None at inference)."""
        if not self.training or not self.probs:
            return None
        return self.schedule.weight * budget_loss(self.probs, self.schedule.target)


@torch.no_grad()
def calibrate(model: OryxForCausalLM, batches: Iterable[torch.Tensor],
              targets: Iterable[float] | None = None) -> dict[float, list[float]]:
    """Set the router's thresholds from held-out input_ids batches ([b, T] each, no padding), for every
    target of its config, or for `targets`, which then replace the config's (model.config.router.targets,
    saved with the model); returns {target: [threshold per routed layer]}.

    A layer's input depends on the decisions of the layers below it, so the layers are calibrated in
    order: pass j runs the model with the thresholds of layers < j final and takes layer j's scores.
    """
    router = model.router
    if router is None:
        raise OryxError("this model has no learned router to calibrate")
    if targets is not None:  # validated (0..1, at least one) by RouterConfig
        model.config.router = router.set_targets(tuple(targets))
    batches = list(batches)
    if not batches:
        raise OryxError("calibrating the router needs at least one batch of held-out input_ids")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    router.calibrating = True
    out: dict[float, list[float]] = {}
    try:
        for t, target in enumerate(router.config.targets):
            schedule = Learned(target)
            for j, layer in enumerate(router.layers):
                scores = torch.cat([model(ids.to(device), modes=schedule).router_scores[layer].flatten()
                                    for ids in batches])
                router.thresholds[t, j] = threshold_for(scores, target)
            router.calibrated[t] = True
            out[target] = router.thresholds[t].tolist()
    finally:
        router.calibrating = False
        model.train(was_training)
    return out
