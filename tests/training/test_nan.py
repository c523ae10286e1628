"""A non-finite loss stops the run with a message and keeps the last good checkpoint."""

from __future__ import annotations

import pytest
import torch

from oryx.pretrained import load_pretrained
from oryx.training import checkpoints as ckpt
from oryx.training.config import load_run_config
from oryx.training.trainer import Diverged, Trainer
from tests.training.conftest import oryx, write_config


def test_nan_stops_before_the_update_and_keeps_checkpoints(tmp_path):
    config = load_run_config(write_config(tmp_path), ["train.checkpoint_every=2", "train.val_every=100"])

    def poison(trainer, step, loss):
        if step == 3:  # a NaN in the weights, as a blown-up update would leave: step 4 sees a NaN loss
            trainer.module.embed.weight.data.fill_(float("nan"))

    with pytest.raises(Diverged, match="step 4: loss nan; stopped without saving") as e:
        Trainer(config, hooks=[poison]).run()
    good = ckpt.step_dir(tmp_path / "out", 2)
    assert f"The last good checkpoint is {good}" in str(e.value)
    assert ckpt.latest_checkpoint(tmp_path / "out") == good and [p.name for p in ckpt.checkpoints(tmp_path / "out")] == [good.name]
    model, _ = load_pretrained(tmp_path / "out")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_exit_status_on_divergence(tmp_path):
    """An absurd learning rate blows the model up: exit status 1, one `error:` line, no traceback."""
    result = oryx("train", str(write_config(tmp_path)), "optim.lr=1e30", "optim.warmup_steps=0",
                  "train.checkpoint_every=1", "train.val_every=1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "error: step 1: validation val/loss/" in result.stderr and "Traceback" not in result.stderr
    assert ckpt.checkpoints(tmp_path / "out") == []
