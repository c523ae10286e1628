"""Training with the learned router (issue 17): from scratch and from a mixed-trained checkpoint
(train.init_from), the reached attention fraction per layer in MLflow, calibrated checkpoints, resume."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from oryx import OryxError
from oryx.pretrained import load_pretrained
from oryx.training.config import load_run_config
from oryx.training.trainer import Trainer
from tests.training.conftest import write_config

LEARNED = {"train": "learned:0.25"}


def train(path, *overrides: str) -> dict:
    return Trainer(load_run_config(path, list(overrides)), path).run()


def metrics(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_learned_training_from_scratch_logs_fractions_per_layer_and_saves_a_calibrated_router(tmp_path, runs_dir):
    path = write_config(tmp_path, schedule=LEARNED, tracking={"enabled": True})
    summary = train(path)
    steps = [m for m in metrics(tmp_path / "out") if "train/loss" in m]
    for m in steps:  # the drawn fraction stays near the budget from the first step (the router starts there)
        layers = [m[f"train/attention_fraction/layer_{i}"] for i in range(2)]
        assert all(abs(f - 0.25) < 0.15 for f in layers), m
        assert m["train/attention_fraction"] == pytest.approx(sum(layers) / 2)
        assert m["train/router_budget_loss"] >= 0
    run = MlflowClient(f"sqlite:///{runs_dir}/mlflow.db").get_run(summary["mlflow_run_id"])
    assert {"train/attention_fraction/layer_0", "train/attention_fraction/layer_1",
            "train/router_budget_loss"} <= set(run.data.metrics)
    assert run.data.params["schedule"] == "learned:0.25"
    assert "val/loss/schedule" in run.data.metrics  # validated with the calibrated thresholds

    model, _ = load_pretrained(tmp_path / "out")
    assert model.config.router is not None and 0.25 in model.config.router.targets
    assert model.router.calibrated.all()
    ids = torch.randint(1, 64, (4, 32))
    out = model(ids, modes="learned:0.25")
    assert out.router_scores is not None and out.modes.any()


def test_learned_training_continues_a_mixed_trained_model(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    train(write_config(tmp_path / "a"), "train.max_steps=4")  # TINY's mixed training
    source, _ = load_pretrained(tmp_path / "a" / "out")
    path = write_config(tmp_path / "b", schedule=LEARNED, train={"init_from": str(tmp_path / "a" / "out")})
    trainer = Trainer(load_run_config(path), path).prepare()
    trainer._init_from()
    state = trainer.module.state_dict()
    for name, value in source.state_dict().items():
        assert torch.equal(state[name], value), name  # every weight of the mixed-trained model
    assert trainer.module.router is not None  # and a fresh router beside them
    summary = train(path, "train.max_steps=2")
    assert summary["step"] == 2


@pytest.mark.parametrize("override, message", [
    pytest.param("model.d_model=32", "differs from this run's in d_model", id="another-model"),
    pytest.param("model.router.hidden=4", "do not fit", id="another-router-shape"),
])
def test_init_from_a_model_that_does_not_fit_is_a_named_error(tmp_path, override, message):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    source = write_config(tmp_path / "a", schedule=LEARNED)
    train(source, "train.max_steps=1")
    path = write_config(tmp_path / "b", schedule=LEARNED, train={"init_from": str(tmp_path / "a" / "out")})
    with pytest.raises(OryxError, match=message):
        train(path, override)


def test_learned_training_resumes_exactly(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = write_config(tmp_path / "a", schedule=LEARNED, train={"max_steps": 6, "checkpoint_every": 3})
    parts = write_config(tmp_path / "b", schedule=LEARNED, train={"max_steps": 6, "checkpoint_every": 3})
    expected = train(whole)

    class Stop(Exception):
        pass

    def stop(trainer, step, loss):  # after step 3's checkpoint, as a killed process would
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        Trainer(load_run_config(parts), parts, hooks=[stop]).run()
    resumed = train(parts)
    assert resumed["loss"] == expected["loss"]  # the router's draws come from the checkpointed generator


def test_a_learned_validation_schedule_gets_its_own_calibrated_target(tmp_path):
    """schedule.val learned:0.4 beside training at learned:0.25 (and beside mixed training): the router
    holds a threshold for 0.4 from the start, so validation runs it instead of failing at its first step."""
    for train_spec in ("learned:0.25", "mixed:8:0.25:0.25"):
        out = tmp_path / train_spec.replace(":", "_")
        path = write_config(tmp_path, schedule={"train": train_spec, "val": ["learned:0.4"]},
                            train={"out_dir": str(out)})
        train(path)
        assert any("val/loss/learned:0.4" in m for m in metrics(out)), train_spec
        model, _ = load_pretrained(out)
        assert 0.4 in model.config.router.targets and model.router.calibrated.all()
