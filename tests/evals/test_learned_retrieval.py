"""Retrieval evaluation of a learned router (issue 17): the schedule reaches the model, the mode log's
router_score holds the router's scores (and the modes are where they pass the calibrated threshold), and
the reported fraction is the one measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evals.modelog import ModeLog
from evals.retrieval import build_task, evaluate
from evals.schedule import resolve_schedule
from oryx import OryxForCausalLM, presets


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = OryxForCausalLM(presets.get("oryx-mamba2-tiny", router={"hidden": 8, "targets": [0.25]})).eval()
    m.calibrate_router([torch.randint(0, 256, (16, 32))])
    return m


def test_router_scores_and_measured_fraction_are_logged(model):
    batch = build_task("mqar", model.config, n=12, options={"input_seq_len": 32, "num_kv_pairs": 4})
    log = ModeLog(model.config.n_layers, sample=3)
    result = evaluate(model, batch, "mqar", resolve_schedule(model.config, "learned:0.25"), batch_size=5, log=log)
    frame = log.frame("mqar")
    assert result.schedule == "learned:0.25" and frame["router_score"].notna().all()
    thresholds = model.router.thresholds[0].numpy()
    above = frame["router_score"].to_numpy() > thresholds[frame["layer"].to_numpy()]
    assert np.array_equal(above, frame["mode"].to_numpy())          # the modes are the scores' decisions
    with torch.no_grad():
        measured = model(batch.input_ids, modes="learned:0.25").modes.float().mean((1, 2))
    for i, fraction in enumerate(measured.tolist()):
        assert result.metrics[f"attention_fraction/layer_{i}"] == pytest.approx(fraction)
    assert 0 < result.metrics["attention_fraction"] < 1


def test_fixed_schedules_leave_router_score_empty(model):
    batch = build_task("mqar", model.config, n=4, options={"input_seq_len": 32, "num_kv_pairs": 4})
    log = ModeLog(model.config.n_layers, sample=2)
    evaluate(model, batch, "mqar", resolve_schedule(model.config, "last:8"), batch_size=4, log=log)
    assert log.frame("mqar")["router_score"].isna().all()


@pytest.mark.parametrize("router, spec, message", [
    pytest.param(None, "learned:0.1", "needs a model with a learned router", id="no-router"),
    pytest.param({"targets": [0.25]}, "learned:0.1", "keeps thresholds for fractions 0.25 only", id="uncalibrated-fraction"),
])
def test_a_learned_schedule_the_model_cannot_run_fails_before_evaluating(router, spec, message):
    from oryx.errors import OryxError

    with pytest.raises(OryxError, match=message):
        resolve_schedule(presets.get("oryx-mamba2-tiny", router=router), spec)
