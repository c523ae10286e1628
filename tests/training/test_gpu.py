"""Training on CUDA (bf16 autocast, fp32 weights and optimizer): runs on the device machine only."""

from __future__ import annotations

import math

import pytest
import torch

from oryx.pretrained import load_pretrained
from oryx.training.config import load_run_config
from oryx.training.trainer import Trainer
from tests.training.conftest import write_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("preset", ["oryx-mamba2-tiny", "oryx-gdn-tiny", "transformer-tiny"])
def test_bf16_training_on_cuda(tmp_path, preset):
    schedule = "mixed:8:0.2:0.2" if preset.startswith("oryx") else "native"
    path = write_config(tmp_path, model={"preset": preset}, schedule={"train": schedule},
                        train={"device": "cuda", "precision": "auto", "max_steps": 4, "checkpoint_every": 4})
    summary = Trainer(load_run_config(path)).run()
    assert math.isfinite(summary["loss"]) and all(math.isfinite(v) for v in summary["val"].values())
    model, _ = load_pretrained(tmp_path / "out")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
