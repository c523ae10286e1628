"""The learned router: a small causal per-position scorer that picks each position's mode, per layer.

    spec: learned:TARGET[:WEIGHT]

TARGET is the fraction of positions each routed layer runs in attention mode. In training (the model in
`train()` mode) the router draws each position's mode from its probability p = sigmoid(score) and a
budget loss WEIGHT * mean over layers of (TARGET - mean p)^2 (Taipan's form) pulls the drawn fraction to
TARGET; at inference (`eval()` mode) a position runs attention where its score is above the layer's
threshold for TARGET, calibrated on held-out data (`model.calibrate_router`, oryx/model/routed.py) and
stored with the model.
Nothing looks at other positions (no top-k over the sequence): a position's score is a function of the
layer's input at that position, which depends on positions up to it only, so decoding step by step makes
the parallel forward's decisions.

Gradient (why the mask can be trained at the cost of the positions that ran attention): the relaxed
output o = o_lin + p * (o_att - o_lin) has dL/dp = <dL/do, o_att - o_lin>. With the mode drawn as
d ~ Bernoulli(p) (a hard Gumbel-sigmoid sample is exactly this draw), d / p * <dL/do, o_att - o_lin> is an
unbiased estimate of it that needs o_att only where d = 1, which is where attention ran. The mixer adds
`(gate - gate.detach()) * (o_att - o_lin)` to its output (zero in value: the forward is the hard choice)
with gate = d * p / max(p, P_FLOOR) (the floor bounds the estimator's variance for rare positions).

The router is an `nn.Module` of the model (its parameters and thresholds are in the model's
safetensors); this module knows no model: it maps a layer's input [B, T, d] to scores [B, T].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from oryx.errors import OryxError
from oryx.routing.schedules import Schedule, _expect, _num, _ratio, register

#: the estimator divides by max(p, P_FLOOR): positions drawn at p < P_FLOOR get a gradient at most
#: 1 / P_FLOOR times theirs, a small bias for a bounded variance
P_FLOOR = 0.01
#: fractions a router is calibrated for unless its config says otherwise (the comparisons of issue 17)
DEFAULT_TARGETS = (0.05, 0.1, 0.25)


class RouterConfig(BaseModel):
    """The router's shape (its parameters): one scorer per routed layer, or one shared by all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shared: bool = Field(
        False, description="one scorer for every routed layer (plus a bias per layer) instead of one per layer")
    hidden: int = Field(32, ge=0, description="hidden width of the scorer MLP; 0 = a linear scorer")
    targets: tuple[float, ...] = Field(
        DEFAULT_TARGETS, description="attention fractions to calibrate thresholds for (learned:TARGET at "
        "inference needs TARGET among them); the trainer adds its training target")

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one target fraction")
        if any(not 0.0 <= t <= 1.0 for t in value):
            raise ValueError(f"target fractions must be between 0 and 1, got {list(value)}")
        return tuple(sorted(set(float(t) for t in value)))

    def with_target(self, target: float) -> RouterConfig:
        """This config with `target` among its calibrated fractions."""
        return self if target in self.targets else self.model_copy(update={"targets": tuple(sorted({*self.targets, target}))})


@register
@dataclass(frozen=True)
class Learned(Schedule):
    """Modes from the model's learned router at attention fraction `target` (see the module docstring)."""

    target: float
    weight: float = 10.0
    name: ClassVar[str] = "learned"
    needs_hidden: ClassVar[bool] = True

    def mask(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        raise OryxError(f"{self}: a learned router decides inside the model, layer by layer; pass the schedule "
                        f"itself as the model's modes (a mask cannot be made from the ids alone)")

    def args(self) -> list[str]:
        return [_num(self.target)] + ([] if self.weight == Learned.weight else [_num(self.weight)])

    @classmethod
    def from_args(cls, args: list[str]) -> Learned:
        usage = "learned:TARGET[:WEIGHT]"
        _expect(args, 1, 2, usage)
        target = _ratio(args[0], f"{usage}: TARGET")
        if len(args) == 1:
            return cls(target)
        try:
            weight = float(args[1])
        except ValueError:
            raise OryxError(f"{usage}: WEIGHT must be a number >= 0, got {args[1]!r}") from None
        if not weight >= 0 or math.isinf(weight):
            raise OryxError(f"{usage}: WEIGHT must be a finite number >= 0, got {args[1]!r}")
        return cls(target, weight)


class _Scorer(nn.Module):
    """x [B, T, d] -> score [B, T] (float32, or x's dtype if wider): RMS-normalised input (no parameters)
    through a small MLP."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.net = (nn.Sequential(nn.Linear(d_model, hidden), nn.SiLU(), nn.Linear(hidden, 1)) if hidden
                    else nn.Sequential(nn.Linear(d_model, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)  # at least float32: thresholds are sharp
        x = x.to(dtype)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        weights = [(m.weight.to(dtype), m.bias.to(dtype)) for m in self.net if isinstance(m, nn.Linear)]
        for i, (w, b) in enumerate(weights):
            x = F.linear(x, w, b)
            if i < len(weights) - 1:
                x = F.silu(x)
        return x.squeeze(-1)

    @property
    def out(self) -> nn.Linear:
        return self.net[-1]


@dataclass
class Decision:
    """One routed layer's choice: mask [B, T] bool (True = attention); scores [B, T] float32 (logits) and
    probs = sigmoid(scores), differentiable in training; gate [B, T] for the mixer's straight-through
    term, or None."""

    mask: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor
    gate: torch.Tensor | None


class Router(nn.Module):
    """Scores and decisions for the routed layers `layers` (model layer indices) of a d_model-wide model.

    Buffers: thresholds [n_targets, n_layers] (score thresholds, set by `model.calibrate_router`), calibrated
    [n_targets] bool. Both are in the state dict, so a saved model keeps its calibration.
    """

    def __init__(self, config: RouterConfig, d_model: int, layers: list[int]):
        super().__init__()
        self.config = config
        self.layers = list(layers)
        self.index = {layer: j for j, layer in enumerate(self.layers)}
        n = len(self.layers)
        if config.shared:
            self.scorer = _Scorer(d_model, config.hidden)
            self.layer_bias = nn.Parameter(torch.zeros(n))
        else:
            self.scorers = nn.ModuleList(_Scorer(d_model, config.hidden) for _ in range(n))
        self.register_buffer("thresholds", torch.zeros(len(config.targets), n))
        self.register_buffer("calibrated", torch.zeros(len(config.targets), dtype=torch.bool))
        self.calibrating = False  # set by the model while it calibrates: thresholds not yet final

    def _apply(self, fn, recurse=True):
        """Moves and casts like any module, but the thresholds stay float32: they are compared with float32
        scores, and a bf16 model must not round them (a rounded threshold shifts the fraction)."""
        kept = self.thresholds
        super()._apply(fn, recurse)
        self.thresholds = kept.to(self.thresholds.device)
        return self

    def set_targets(self, targets: tuple[float, ...]) -> RouterConfig:
        """Keep thresholds for these fractions from now on (none calibrated yet); returns the new config."""
        self.config = RouterConfig(**{**self.config.model_dump(), "targets": targets})
        n, device = len(self.layers), self.thresholds.device
        self.thresholds = torch.zeros(len(self.config.targets), n, dtype=self.thresholds.dtype, device=device)
        self.calibrated = torch.zeros(len(self.config.targets), dtype=torch.bool, device=device)
        return self.config

    def start_at(self, fraction: float) -> None:
        """Output biases at logit(fraction): a fresh router starts near its budget, not at p = 0.5."""
        p = min(max(fraction, 1e-4), 1 - 1e-4)
        with torch.no_grad():
            for scorer in ([self.scorer] if self.config.shared else self.scorers):
                scorer.out.bias.fill_(math.log(p / (1 - p)))
            if self.config.shared:
                self.layer_bias.zero_()

    def scores(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """x [B, T, d], the input of model layer `layer` -> scores [B, T] (at least float32)."""
        j = self.index[layer]
        if self.config.shared:
            return self.scorer(x) + self.layer_bias[j]
        return self.scorers[j](x)

    def target_index(self, target: float) -> int:
        """The row of `thresholds` for `target`; an OryxError when the router was not calibrated for it."""
        check_router(Learned(target), self.config)
        t = self.config.targets.index(target)
        if not self.calibrating and not bool(self.calibrated[t]):
            raise OryxError(f"learned:{_num(target)}: the router's threshold for this fraction is not "
                            f"calibrated; call model.calibrate_router(batches) on held-out data (the "
                            f"trainer does at every validation and checkpoint)")
        return t

    def decide(self, x: torch.Tensor, layer: int, target: float, training: bool) -> Decision:
        """Modes of the positions of x [B, T, d] at model layer `layer`: drawn in training (with the
        straight-through gate when gradients are on), thresholded at inference."""
        s = self.scores(x, layer)
        p = torch.sigmoid(s)
        if training:
            mask = torch.rand_like(p) < p.detach()
            gate = mask * p / p.detach().clamp_min(P_FLOOR) if torch.is_grad_enabled() else None
            return Decision(mask, s, p, gate)
        threshold = self.thresholds[self.target_index(target), self.index[layer]]
        return Decision(s > threshold, s, p, None)


def check_router(schedule: Learned, config: RouterConfig | None, inference: bool = True) -> None:
    """An OryxError, before anything runs, when a model of router `config` cannot run `schedule` (at
    inference it needs a threshold for the schedule's fraction; training draws, no threshold)."""
    if config is None:
        raise OryxError(f"schedule {schedule} needs a model with a learned router (model.router in its config; "
                        f"`oryx train` adds one for schedule.train=learned:...), and this one has none")
    if inference and schedule.target not in config.targets:
        raise OryxError(f"{schedule}: this router keeps thresholds for fractions "
                        f"{', '.join(_num(t) for t in config.targets)} only (model.router.targets); train or "
                        f"calibrate it with that target among them")


def budget_loss(probs: list[torch.Tensor], target: float) -> torch.Tensor:
    """Mean over routed layers of (target - mean p)^2; probs: one [B, T] per layer -> scalar."""
    return torch.stack([(target - p.mean()) ** 2 for p in probs]).mean()


def threshold_for(scores: torch.Tensor, fraction: float) -> float:
    """A threshold with round(fraction * N) of the N scores strictly above it: midway between the k-th and
    (k+1)-th largest (+inf for k = 0, -inf for k = N)."""
    flat = scores.flatten().double()
    n = flat.numel()
    k = round(fraction * n)
    if k <= 0:
        return math.inf
    if k >= n:
        return -math.inf
    top = torch.topk(flat, k + 1).values
    return float((top[k - 1] + top[k]) / 2)
