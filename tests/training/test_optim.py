"""Learning rate schedule, weight-decay groups, and parameters of a mode no position used."""

from __future__ import annotations

import math

import pytest
import torch

from oryx import OryxForCausalLM, presets
from oryx.training.config import OptimSection
from oryx.training.optim import build_optimizer, lr_at, param_groups

OPT = OptimSection(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)


@pytest.mark.parametrize("step, expected", [
    pytest.param(1, 0.1, id="warmup-first"),
    pytest.param(5, 0.5, id="warmup-middle"),
    pytest.param(10, 1.0, id="warmup-end"),
    pytest.param(60, 0.1 + 0.9 * 0.5, id="cosine-half"),
    pytest.param(110, 0.1, id="cosine-end"),
    pytest.param(500, 0.1, id="past-the-end"),
])
def test_warmup_then_cosine(step, expected):
    assert math.isclose(lr_at(step, OPT, max_steps=110), expected, rel_tol=1e-12)


def test_no_warmup_starts_at_peak():
    assert lr_at(1, OptimSection(lr=2.0, warmup_steps=0), 100) == pytest.approx(2.0, rel=1e-3)


def test_decay_groups_are_matrices_only():
    model = OryxForCausalLM(presets.get("oryx-gdn-tiny"))
    decay, plain = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert {names[id(p)].rsplit(".", 1)[-1] for p in plain["params"]} >= {"A_log", "dt_bias", "weight", "bias"}
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0


def test_unused_mode_is_neither_updated_nor_decayed():
    """All positions in attention mode: the linear read gets no gradient, so AdamW leaves it bit for bit
    (no weight decay either), while the attention read and shared weights move."""
    model = OryxForCausalLM(presets.get("oryx-mamba2-tiny"))
    opt = build_optimizer(model, OptimSection(lr=1e-2, weight_decay=0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(0, 256, (2, 16))
    for _ in range(3):
        model(ids, modes="all_attention", labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for name, p in model.named_parameters():
        same = torch.equal(p, before[name])
        assert same == (".mixer.lin." in name), name
