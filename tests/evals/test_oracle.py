"""The query-aligned oracle (`oracle:query`): attention exactly where a task asks its questions, read
from the task's role annotation; only evaluations that have the annotation can run it."""

from __future__ import annotations

import pytest
import torch

from evals.modelog import ModeLog
from evals.retrieval import build_task, evaluate
from evals.schedule import batch_modes, resolve_schedule
from oryx import presets, routing
from oryx.cli.main import main
from oryx.data.synthetic import MQARConfig, NIAHConfig
from oryx.errors import OryxError
from oryx.model import OryxForCausalLM


@pytest.mark.parametrize("spec,roles", [
    pytest.param("oracle:query", ("query",), id="query"),
    pytest.param("oracle:key,value", ("key", "value"), id="two-roles"),
])
def test_spec_round_trips(spec, roles):
    schedule = routing.parse(spec)
    assert schedule.roles == roles and str(schedule) == spec and routing.parse(str(schedule)) == schedule
    assert schedule.needs_annotation and not routing.parse("last:4").needs_annotation


@pytest.mark.parametrize("spec,message", [
    pytest.param("oracle", "takes 1 field", id="no-field"),
    pytest.param("oracle:", "empty role name", id="empty"),
    pytest.param("oracle:query,", "empty role name", id="trailing-comma"),
])
def test_bad_specs_are_named_errors(spec, message):
    with pytest.raises(OryxError, match=message):
        routing.parse(spec)


def test_mask_needs_the_annotation_of_the_same_shape():
    ids = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(OryxError, match="is an oracle"):
        routing.oracle("query").mask(ids)
    with pytest.raises(OryxError, match="annotation of shape"):
        routing.oracle("query").mask(ids, annotation=torch.ones(2, 7, dtype=torch.bool))
    marks = torch.rand(2, 8) < 0.5
    assert torch.equal(routing.oracle("query").mask(ids, annotation=marks), marks)


@pytest.mark.parametrize("task,expected", [
    # MQAR answers a query at the query's own position
    pytest.param(MQARConfig(vocab_size=64, num_kv_pairs=4, input_seq_len=32, num_examples=3, seed=1), ("query",),
                 id="mqar"),
    # the needle task's question span, and the answer positions that predict the value's later tokens
    pytest.param(NIAHConfig(vocab_size=64, context_len=[40, 48], depth=[0.0, 1.0], num_examples=2, seed=2),
                 ("question", "answer"), id="niah"),
])
def test_query_is_the_tasks_question_roles(task, expected):
    batch = task.generate()
    want = torch.zeros_like(batch.roles, dtype=torch.bool)
    for role in expected:
        want |= batch.roles == batch.role_names.index(role)
    assert want.any(dim=1).all()
    assert torch.equal(batch.oracle_mask(("query",)), want)
    assert torch.equal(batch[[1, 0]].oracle_mask(("query",)), want[[1, 0]])  # kept through indexing
    with pytest.raises(OryxError, match="unknown role 'nosuch'"):
        batch.oracle_mask(("nosuch",))


def test_oracle_outside_an_annotated_evaluation_is_refused():
    config = presets.get("oryx-mamba2-tiny")
    with pytest.raises(OryxError, match="is an oracle"):
        resolve_schedule(config, "oracle:query")  # lm-eval, generation: no role annotation
    assert resolve_schedule(config, "oracle:query", annotated=True) == routing.oracle("query")
    with pytest.raises(OryxError, match="is an oracle"):
        OryxForCausalLM(config)(torch.zeros(1, 4, dtype=torch.long), modes="oracle:query")


def test_training_with_an_oracle_is_refused(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model: {preset: oryx-mamba2-tiny}\ndata: {kind: mqar, task: {vocab_size: 64}}\n"
                      f"schedule: {{train: 'oracle:query'}}\ntrain: {{max_steps: 1, out_dir: {tmp_path / 'out'}}}\n")
    assert main(["train", str(config), "tracking.enabled=false"]) == 2
    err = capsys.readouterr().err
    assert "schedule.train" in err and "is an oracle" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("family", ["oryx-mamba2", "oryx-gdn"])
def test_evaluation_runs_attention_exactly_at_the_queries(family):
    """The measured fraction is the queries' share, every layer's log marks exactly the query positions
    (padding of shorter needle rows is never read)."""
    torch.manual_seed(0)
    model = OryxForCausalLM(presets.get(f"{family}-tiny", vocab_size=64)).eval()
    batch = build_task("mqar", model.config, n=6, options={"num_kv_pairs": 4, "input_seq_len": 32})
    log = ModeLog(model.config.n_layers, sample=6)
    result = evaluate(model, batch, "mqar", resolve_schedule(model.config, "oracle:query", annotated=True), 4, log)
    assert result.schedule == "oracle:query"
    assert result.metrics["attention_fraction"] == pytest.approx(4 / 32)
    frame = log.frame("mqar")
    assert (frame["mode"] == (frame["role"] == "query")).all()


def test_batch_modes_count_last_from_the_unpadded_length():
    batch = build_task("niah", presets.get("oryx-mamba2-tiny", vocab_size=64), n=1,
                       options={"context_len": [40, 48], "vocab_size": 64})
    short = batch[[0]]
    assert int(short.slices["context_len"][0]) == 40 and short.input_ids.shape[1] == 48
    modes = batch_modes(routing.last(3), short, 40)
    assert modes.shape == (1, 40) and modes[0, 37:].all() and not modes[0, :37].any()
    oracle = batch_modes(routing.oracle("query"), short, 40)
    assert torch.equal(oracle, short.oracle_mask(("query",))[:, :40])
