"""Retrieval evaluation: answer scoring and slices against an oracle whose right answers are known,
task building and its checks, sweep expansion."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from evals.modelog import ModeLog
from evals.retrieval import _bucket, build_task, evaluate, expand_sweep
from evals.schedule import resolve_schedule
from oryx import presets
from oryx.data.synthetic import IGNORE
from oryx.errors import OryxError
from oryx.model import OryxOutput


class Oracle(nn.Module):
    """Predicts every label of the examples it is told to get right, and a wrong id everywhere else;
    runs every position in attention mode on 2 layers."""

    def __init__(self, batch, right_rows: set[int], vocab: int):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.rows = {tuple(batch.input_ids[r].tolist()): r for r in range(len(batch))}
        self.batch, self.right, self.vocab = batch, right_rows, vocab

    def forward(self, input_ids, modes=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab)
        for b in range(B):
            row = self._row(input_ids[b])
            target = self.batch.labels[row, 1 : T + 1]
            wrong = (self.batch.input_ids[row, 1 : T + 1] + 1) % self.vocab
            guess = torch.where((target != IGNORE) & torch.tensor(row in self.right), target, wrong)
            logits[b, torch.arange(len(guess)), guess] = 1.0
        return OryxOutput(logits=logits, modes=torch.ones(2, B, T, dtype=torch.bool))

    def _row(self, ids: torch.Tensor) -> int:
        """The example whose first len(ids) tokens these are (rows may be cut before their padding)."""
        n = len(ids)
        return next(r for key, r in self.rows.items() if list(key[:n]) == ids.tolist())


def test_accuracy_and_slices_count_answers_exactly():
    config = presets.get("oryx-mamba2-tiny")
    batch = build_task("mqar", config, n=6, options={"num_kv_pairs": [2, 4], "input_seq_len": 32})
    assert len(batch) == 12
    right = {r for r in range(12) if int(batch.slices["num_kv_pairs"][r]) == 2}  # the 2-pair examples
    model = Oracle(batch, right, config.vocab_size)
    result = evaluate(model, batch, "mqar", None, batch_size=5, log=ModeLog(2, sample=3))
    m = result.metrics
    assert m["accuracy/num_kv_pairs:2"] == 1.0 and m["accuracy/num_kv_pairs:4"] == 0.0
    assert m["accuracy"] == pytest.approx(6 * 2 / (6 * 2 + 6 * 4))  # answers of the right examples / all
    assert m["exact_match"] == pytest.approx(6 / 12)
    assert m["attention_fraction"] == 1.0 and m["attention_fraction/layer_1"] == 1.0
    distances = {k for k in m if k.startswith("accuracy/query_distance:")}
    assert distances and all(_bucket(int(k.split(":")[1].split("-")[0])) == k.split(":")[1] for k in distances)


def test_needle_slices_and_rows_of_several_lengths():
    config = presets.get("oryx-gdn-tiny")
    batch = build_task("niah", config, n=2, options={"context_len": [24, 40], "depth": [0.0, 1.0]})
    model = Oracle(batch, set(range(len(batch))), config.vocab_size)
    log = ModeLog(2, sample=8)
    m = evaluate(model, batch, "niah", None, batch_size=3, log=log).metrics
    assert m["accuracy"] == 1.0 and m["exact_match"] == 1.0
    assert {k for k in m if k.startswith("accuracy/")} == {
        "accuracy/context_len:24", "accuracy/context_len:40", "accuracy/depth:0", "accuracy/depth:1"}
    frame = log.frame("niah")
    assert set(frame.groupby("example")["position"].max() + 1) == {24, 40}  # no padding was read
    assert set(frame["role"].dropna()) >= {"filler", "needle_key", "needle_value", "question", "answer"}


def test_a_real_model_scores_its_own_argmax():
    """evaluate() on a real model agrees with a plain forward's argmax at the answer positions."""
    from oryx import OryxForCausalLM

    model = OryxForCausalLM(presets.get("oryx-mamba2-tiny", vocab_size=16)).eval()
    batch = build_task("mqar", model.config, n=8, options={"num_kv_pairs": 2, "input_seq_len": 16})
    schedule = resolve_schedule(model.config, "last:5")
    got = evaluate(model, batch, "mqar", schedule, batch_size=3, log=ModeLog(2)).metrics
    with torch.no_grad():
        pred = model(batch.input_ids, modes=schedule.mask(batch.input_ids)).logits.argmax(-1)
    known = batch.labels[:, 1:] != IGNORE
    expected = ((pred[:, :-1] == batch.labels[:, 1:]) & known).sum() / known.sum()
    assert got["accuracy"] == pytest.approx(float(expected))
    assert got["attention_fraction"] == pytest.approx(5 / 16)


@pytest.mark.parametrize("task,options,message", [
    pytest.param("mqar", {"vocab_size": 9999}, "larger than the model's vocabulary", id="vocab-too-big"),
    pytest.param("mqar", {"input_seq_len": 128}, "longer than the model supports", id="too-long"),
    pytest.param("niah", {"context_len": [100]}, "longer than the model supports", id="niah-too-long"),
    pytest.param("mqar", {"num_kv_pairs": []}, "num_kv_pairs is an empty list", id="empty-sweep"),
    pytest.param("sudoku", {}, "unknown retrieval task 'sudoku'", id="unknown-task"),
])
def test_bad_tasks_are_errors(task, options, message):
    config = presets.get("oryx-mamba2-tiny", max_seq_len=64)
    with pytest.raises(OryxError, match=message):
        build_task(task, config, n=2, options=options)


def test_unknown_task_option_names_the_key():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="num_pairs"):
        build_task("mqar", presets.get("oryx-mamba2-tiny"), n=2, options={"num_pairs": 3})


@pytest.mark.parametrize("spec,expanded", [
    ("last:16", ["last:16"]),
    ("last:{0,16,64}", ["last:0", "last:16", "last:64"]),
    ("chunks:{64,128}:{0.1,0.5}", ["chunks:64:0.1", "chunks:64:0.5", "chunks:128:0.1", "chunks:128:0.5"]),
    ("spans:0-4,8-12", ["spans:0-4,8-12"]),
], ids=["plain", "one-sweep", "product", "commas-outside-braces"])
def test_expand_sweep(spec, expanded):
    assert expand_sweep(spec) == expanded


def test_empty_sweep_is_an_error():
    with pytest.raises(OryxError, match="empty sweep"):
        expand_sweep("last:{}")
