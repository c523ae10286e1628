"""The measured attention fraction is exact; schedules a model cannot run are refused; the per-token
mode log has its documented schema (and survives a parquet round trip)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from evals.modelog import MODE_LOG_COLUMNS, ModeLog, Tag
from evals.schedule import resolve_schedule
from evals.scoring import Scorer
from oryx import OryxForCausalLM, presets
from oryx.errors import OryxError

V = 259


def measured(family: str, spec: str, lengths: list[int]) -> dict[str, float]:
    """Attention fractions a Scorer measures over whole sequences of these lengths."""
    model = OryxForCausalLM(presets.get(f"{family}-tiny", vocab_size=V)).eval()
    log = ModeLog(model.config.n_layers)
    scorer = Scorer(model, resolve_schedule(model.config, spec), batch_size=2, log=log)
    pairs = [(torch.randint(0, V, (n,)).tolist(), [1]) for n in lengths]  # inputs: exactly n positions
    scorer.loglikelihood(pairs, [Tag("t", i) for i in range(len(pairs))])
    return log.fractions("t")


# expected values worked out by hand from the schedules' definitions (oryx/routing/schedules.py)
FRACTIONS = [
    pytest.param("oryx-mamba2", "last:4", [10, 6], 8 / 16, id="last4-two-lengths"),
    pytest.param("oryx-mamba2", "last:16", [10, 6], 1.0, id="last-longer-than-sequences"),
    pytest.param("oryx-gdn", "last:0", [12], 0.0, id="last0"),
    # chunks of 4, ratio 0.25: chunks 0 and 4 of 0..7 -> positions 0-3, 16-19 of 32
    pytest.param("oryx-mamba2", "chunks:4:0.25", [32], 8 / 32, id="chunks-quarter"),
    # ratio 0.5 over 30 positions: chunks 0, 2, 4, 6 -> 0-3, 8-11, 16-19, 24-27
    pytest.param("oryx-gdn", "chunks:4:0.5", [30], 16 / 30, id="chunks-half-partial-last"),
    pytest.param("oryx-mamba2", "spans:2-5,9-12", [20, 10], (6 + 4) / 30, id="spans"),
    pytest.param("oryx-mamba2", "all_attention", [7, 9], 1.0, id="all-attention"),
    pytest.param("oryx-gdn", "all_linear", [7, 9], 0.0, id="all-linear"),
    pytest.param("transformer", "native", [7, 9], 1.0, id="transformer-native"),
    pytest.param("mamba2", "native", [7, 9], 0.0, id="mamba2-native"),
]


@pytest.mark.parametrize("family,spec,lengths,expected", FRACTIONS)
def test_measured_attention_fraction_is_exact(family, spec, lengths, expected):
    got = measured(family, spec, lengths)
    assert got["attention_fraction"] == pytest.approx(expected, abs=1e-12)
    assert got["attention_fraction/layer_0"] == got["attention_fraction/layer_1"] == got["attention_fraction"]


def test_fraction_per_layer_of_a_static_hybrid():
    """hybrid-mamba2-tiny (2 layers): layer 0 Mamba-2, layer 1 attention."""
    got = measured("hybrid-mamba2", "native", [9, 5])
    assert got == {"attention_fraction": 0.5, "attention_fraction/layer_0": 0.0, "attention_fraction/layer_1": 1.0}


@pytest.mark.parametrize("family,spec,runs", [
    pytest.param("oryx-mamba2", "last:8", True, id="oryx-any-schedule"),
    pytest.param("oryx-gdn", "native", True, id="oryx-native"),
    pytest.param("transformer", "all_attention", True, id="transformer-all-attention"),
    pytest.param("mamba2", "all_linear", True, id="mamba2-all-linear"),
    pytest.param("hybrid-mamba2", "native", True, id="hybrid-native"),
    pytest.param("transformer", "last:8", False, id="transformer-last"),
    pytest.param("transformer", "all_linear", False, id="transformer-all-linear"),
    pytest.param("gdn", "all_attention", False, id="gdn-all-attention"),
    pytest.param("hybrid-mamba2", "all_linear", False, id="hybrid-all-linear"),
])
def test_schedules_a_model_cannot_run_are_refused(family, spec, runs):
    config = presets.get(f"{family}-tiny")
    if runs:
        resolve_schedule(config, spec)
    else:
        with pytest.raises(OryxError, match=f"cannot run on this {config.family} model.*schedule=native"):
            resolve_schedule(config, spec)


def test_native_on_an_oryx_model_is_its_default_schedule():
    config = presets.get("oryx-mamba2-tiny", default_schedule="chunks:8:0.5")
    assert str(resolve_schedule(config, "native")) == "chunks:8:0.5"
    assert resolve_schedule(presets.get("transformer-tiny"), None) is None


def test_mode_log_schema_and_parquet_round_trip(tmp_path):
    log = ModeLog(n_layers=2, sample=2)
    T = 5
    modes = torch.tensor([[True, False, False, True, True], [False] * T])
    correct = torch.tensor([True, False, True, True, False])
    known = torch.tensor([True, True, False, True, False])
    for example in range(3):  # example 2 is outside the sample: counted, not logged
        log.add(Tag("mqar", example, request=1), torch.arange(T), modes, correct, known, ["key", "value"] * 2 + ["query"])
    log.add(Tag("text", 0), torch.arange(4), torch.ones(2, 4, dtype=torch.bool))
    frame = log.frame("mqar", run="r1")
    assert tuple(frame.columns) == MODE_LOG_COLUMNS
    assert len(frame) == 2 * 2 * T  # 2 sampled examples x 2 layers x T positions
    path = tmp_path / "modes.parquet"
    frame.to_parquet(path, index=False)
    back = pd.read_parquet(path)
    assert dict(frame.dtypes.astype(str)) == {
        "run": "string", "task": "string", "example": "int64", "request": "int64", "layer": "int64",
        "position": "int64", "token": "int64", "mode": "bool", "router_score": "float32", "correct": "boolean",
        "role": "string",
    }
    assert dict(back.dtypes) == dict(frame.dtypes)
    first = back[(back.example == 0) & (back.layer == 0)].sort_values("position")
    assert first["mode"].tolist() == modes[0].tolist()
    assert first["correct"].tolist() == [True, False, pd.NA, True, pd.NA]
    assert first["role"].tolist() == ["key", "value", "key", "value", "query"]
    assert back["router_score"].isna().all() and set(back["request"]) == {1} and set(back["run"]) == {"r1"}
    text = log.frame("text")
    assert text["correct"].isna().all() and text["role"].isna().all()
    assert log.fractions("mqar")["attention_fraction/layer_0"] == pytest.approx(3 / 5)
    assert log.fractions() == pytest.approx({"attention_fraction": (9 + 4 + 4) / (2 * 19),
                                             "attention_fraction/layer_0": (9 + 4) / 19,
                                             "attention_fraction/layer_1": 4 / 19})


def test_empty_mode_log_has_the_columns():
    frame = ModeLog(n_layers=3, sample=0).frame()
    assert frame.empty and tuple(frame.columns) == MODE_LOG_COLUMNS
