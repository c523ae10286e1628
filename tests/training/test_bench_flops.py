"""The FLOP count behind the training benchmark's MFU, checked against PyTorch's own counter."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from oryx import OryxForCausalLM, presets
from oryx.bench.train import forward_flops_per_token, train_flops_per_token


@pytest.mark.parametrize("preset, modes, fraction", [
    pytest.param("transformer-tiny", None, 1.0, id="transformer"),
    pytest.param("mamba2-tiny", None, 0.0, id="mamba2"),
    pytest.param("oryx-mamba2-tiny", "all_attention", 1.0, id="oryx-attention"),
    pytest.param("oryx-gdn-tiny", "all_linear", 0.0, id="oryx-gdn-linear"),
])
def test_matmul_term_matches_torch_flop_counter(preset, modes, fraction):
    """The projections and head: every matrix multiply PyTorch counts (aten.mm) in a forward."""
    config = presets.get(preset)
    ids = torch.randint(0, config.vocab_size, (2, 32))
    counter = FlopCounterMode(display=False)
    with counter:
        OryxForCausalLM(config)(ids, modes=modes)
    mm = sum(n for op, n in counter.get_flop_counts()["Global"].items() if str(op) in ("aten.mm", "aten.addmm"))
    assert forward_flops_per_token(config, 32, fraction)["matmul"] == mm / ids.numel()


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_matmul_term_counts_the_learned_router_at_every_position(fraction):
    """The router's scorer runs at every position whatever the modes: 2 FLOPs per weight of its matrices
    per token, the count PyTorch's counter gives for the scorer alone."""
    config = presets.get("oryx-mamba2-tiny", router={"hidden": 16})
    model = OryxForCausalLM(config)
    x = torch.randn(2, 32, config.d_model)
    counter = FlopCounterMode(display=False)
    with counter:
        for layer in model.router.layers:
            model.router.scores(x, layer)
    router_mm = sum(n for op, n in counter.get_flop_counts()["Global"].items() if str(op) in ("aten.mm", "aten.addmm"))
    without = forward_flops_per_token(presets.get("oryx-mamba2-tiny"), 32, fraction)["matmul"]
    assert forward_flops_per_token(config, 32, fraction)["matmul"] - without == router_mm / x.shape[0] / x.shape[1]


def test_mode_share_and_context_terms():
    config = presets.get("oryx-mamba2-tiny")
    lin, att, half = (forward_flops_per_token(config, 64, f) for f in (0.0, 1.0, 0.5))
    assert lin["attention"] == 0 and att["attention"] > 0 and half["attention"] == pytest.approx(att["attention"] / 2)
    assert half["matmul"] == pytest.approx((lin["matmul"] + att["matmul"]) / 2)
    longer = forward_flops_per_token(config, 129, 1.0)
    assert longer["attention"] == pytest.approx(att["attention"] * 130 / 65)   # (T+1)/2 keys on average
    assert att["recurrence"] == pytest.approx(lin["recurrence"] / 2)            # writes only, no reads
    assert train_flops_per_token(config, 64, 0.5) == pytest.approx(3 * sum(half.values()))


def test_bench_command_writes_its_record(tmp_path, capsys):
    """`oryx bench train` end to end on the CPU (what it records, not how fast it was)."""
    from oryx.cli.main import main

    threads = torch.get_num_threads()
    try:
        assert main(["bench", "train", "--families", "transformer,oryx-mamba2", "--seq-len", "16", "--batch", "2",
                     "--steps", "1", "--warmup", "0", "--cpu-threads", "1", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # the command sets the process's thread count
    record = json.loads((tmp_path / "train-tiny-cpu.json").read_text())
    assert {"date", "command", "torch", "cpu", "matmul_peak_tflops"} <= set(record)
    assert [r["preset"] for r in record["rows"]] == ["transformer-tiny", "oryx-mamba2-tiny"]
    for row in record["rows"]:
        assert row["tokens_per_s"] > 0 and row["mfu_vs_matmul"] > 0 and row["model_flops_per_token"] > 0
    assert record["rows"][1]["schedule"].startswith("mixed:")
    assert main(["bench", "train", "--families", "transformer,oryx-mamba2", "--seq-len", "16", "--batch", "2",
                 "--steps", "1", "--warmup", "0", "--cpu-threads", "1", "--out", str(tmp_path),
                 "--schedule", "learned:0.25"]) == 0   # the learned router's step (two-mode presets only)
    rows = json.loads((tmp_path / "train-tiny-cpu.json").read_text())["rows"]
    assert [r["schedule"] for r in rows] == ["native", "learned:0.25"] and rows[1]["router"] is not None
    assert main(["bench", "train", "--families", "lstm"]) == 2
    assert "error: unknown preset 'lstm-tiny'" in capsys.readouterr().err
