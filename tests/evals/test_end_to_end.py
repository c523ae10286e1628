"""End to end from a checkpoint trained by `oryx train`: `oryx eval lm` on the offline suite (CLI and
Python give the same numbers), `oryx eval retrieval`, what MLflow holds afterwards, and user mistakes
(exit status 2, one `error:` line, nothing logged as complete)."""

from __future__ import annotations

import json
from pathlib import Path

import lm_eval
import pandas as pd
import pytest
from lm_eval.tasks import TaskManager

from evals.harness import OryxLM
from evals.modelog import MODE_LOG_COLUMNS
from oryx.cli.main import main
from tests.evals.conftest import make_model_dir, shared_dir

pytestmark = pytest.mark.slow

TASKS_DIR = str(Path(__file__).resolve().parents[2] / "evals" / "tasks")
LIMIT = 3
SCHEDULE = "chunks:16:0.25"


def client(store: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


def runs_of(store: str, experiment: str):
    c = client(store)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="session")
def lm_cli(trained, corpus, store, tmp_path_factory):
    """One `oryx eval lm` run (for all workers) of the offline suite and the exported MQAR task."""

    def build(out: Path) -> None:
        argv = ["eval", "lm", "--include_path", TASKS_DIR, "--tasks", "oryx_offline,oryx_mqar",
                "--model_args", f"pretrained={trained},schedule={SCHEDULE}",
                "--metadata", json.dumps({"corpus": str(corpus)}), "--limit", str(LIMIT), "--output_path", str(out),
                "--log_samples", "--tracking-uri", store, "--experiment", "evals-test-lm", "--log-modes", "2"]
        assert main(argv) == 0

    return shared_dir(tmp_path_factory, "lm-cli", build)


def test_cli_runs_the_offline_suite_and_writes_lm_eval_outputs(lm_cli):
    results = next(lm_cli.rglob("results_*.json"))
    data = json.loads(results.read_text())
    assert set(data["configs"]) == {"oryx_cloze", "oryx_heldout", "oryx_passkey", "oryx_mqar"}
    assert data["config"]["oryx"]["schedule"] == SCHEDULE
    assert 0 < data["results"]["oryx_heldout"]["bits_per_byte,none"] < 8  # trained: better than uniform bytes
    assert list(lm_cli.rglob("samples_oryx_cloze_*.jsonl"))


def test_cli_results_in_mlflow(lm_cli, store, trained):
    runs = runs_of(store, "evals-test-lm")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = {r.data.params["task"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert parent.data.tags["oryx.kind"] == "eval" and parent.info.status == "FINISHED"
    assert set(children) == {"oryx_cloze", "oryx_heldout", "oryx_passkey", "oryx_mqar"}
    train_run = runs_of(store, "evals-test-train")[-1].info.run_id
    for run in children.values():
        assert run.data.params["schedule"] == SCHEDULE and run.data.params["family"] == "oryx-mamba2"
        assert run.data.tags["oryx.train_run_id"] == train_run
        assert 0 < run.data.metrics["attention_fraction"] < 1
        assert {"attention_fraction/layer_0", "attention_fraction/layer_1"} <= set(run.data.metrics)
    assert "oryx_cloze/acc" in children["oryx_cloze"].data.metrics
    assert "oryx_mqar/acc" in children["oryx_mqar"].data.metrics
    # the per-token mode log of the sampled examples
    path = client(store).download_artifacts(children["oryx_cloze"].info.run_id, "modes/modes.parquet")
    log = pd.read_parquet(path)
    assert tuple(log.columns) == MODE_LOG_COLUMNS
    assert set(log["example"]) <= {0, 1} and set(log["layer"]) == {0, 1} and set(log["request"]) >= {0, 1}
    assert log["mode"].any() and not log["mode"].all() and log["correct"].notna().all()


def test_python_api_gives_the_cli_numbers(lm_cli, trained, corpus):
    lm = OryxLM(pretrained=str(trained), schedule=SCHEDULE, batch_size=4)
    manager = TaskManager(include_path=TASKS_DIR, include_defaults=False, metadata={"corpus": str(corpus)})
    results = lm_eval.simple_evaluate(model=lm, tasks=["oryx_offline"], task_manager=manager, limit=LIMIT)
    cli = json.loads(next(lm_cli.rglob("results_*.json")).read_text())
    for task in ("oryx_cloze", "oryx_heldout", "oryx_passkey"):
        for metric, value in results["results"][task].items():
            if isinstance(value, float):
                assert value == pytest.approx(cli["results"][task][metric], rel=1e-5), (task, metric)
    assert lm.mode_log.fractions("oryx_cloze") == pytest.approx(
        {k: v for k, v in cli["config"]["oryx"]["attention_fraction"]["oryx_cloze"].items()})


def test_retrieval_cli_sweeps_schedules(trained, store, tmp_path):
    out = tmp_path / "retrieval.json"
    argv = ["eval", "retrieval", str(trained), "--task", "mqar", "--schedule", "last:{0,8}", "--schedule", "all_attention",
            "--n", "4", "--set", "num_kv_pairs=[2,4]", "--set", "input_seq_len=32", "--set", "vocab_size=64",
            "--tracking-uri", store, "--experiment", "evals-test-retrieval", "--output", str(out)]
    assert main(argv) == 0
    rows = {r["schedule"]: r["metrics"] for r in json.loads(out.read_text())}
    assert list(rows) == ["last:0", "last:8", "all_attention"]
    assert [rows[s]["attention_fraction"] for s in rows] == [0.0, 8 / 32, 1.0]
    assert {"accuracy/num_kv_pairs:2", "accuracy/num_kv_pairs:4"} <= set(rows["last:8"])
    runs = runs_of(store, "evals-test-retrieval")
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["schedule"] for r in nested) == sorted(rows)
    assert all(r.data.metrics["accuracy"] == rows[r.data.params["schedule"]]["accuracy"] for r in nested)


@pytest.fixture(scope="module")
def short_model(tmp_path_factory) -> tuple[Path, Path]:
    """An Oryx model that supports 32 positions, and a Transformer baseline."""
    root = tmp_path_factory.mktemp("short")
    return make_model_dir(root / "oryx", "oryx-mamba2", max_seq_len=32), make_model_dir(root / "tf", "transformer")


MISTAKES = [
    pytest.param(["eval", "retrieval", "{missing}", "--task", "mqar"], "no model at", id="retrieval-missing-checkpoint"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "sudoku"], "unknown retrieval task", id="retrieval-unknown-task"),
    pytest.param(["eval", "retrieval", "{tf}", "--task", "mqar", "--schedule", "last:4"],
                 "cannot run on this transformer model", id="retrieval-schedule-baseline"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "mqar", "--schedule", "last:4", "--schedule", "bogus:1"],
                 "unknown schedule 'bogus'", id="retrieval-bad-schedule-after-good"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "mqar", "--set", "input_seq_len=64"],
                 "longer than the model supports", id="retrieval-context-too-long"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "mqar", "--set", "pairs=3"], "pairs", id="retrieval-bad-option"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "mqar", "--schedule", "oracle:needle", "--set",
                  "input_seq_len=32"],
                 "unknown role 'needle'", id="retrieval-oracle-unknown-role"),
    pytest.param(["eval", "retrieval", "{oryx}", "--task", "mqar", "--schedule", "oracle:"],
                 "empty role name", id="retrieval-oracle-no-role"),
    pytest.param(["eval", "lm", "--include_path", TASKS_DIR, "--tasks", "oryx_mqar", "--model_args",
                  "pretrained={oryx},schedule=oracle:query"], "is an oracle", id="lm-oracle"),
    pytest.param(["eval", "lm", "--tasks", "no_such_task", "--model_args", "pretrained={oryx}"], "Tasks not found",
                 id="lm-unknown-task"),
    pytest.param(["eval", "lm", "--include_path", TASKS_DIR, "--tasks", "oryx_paper_lm", "--model_args", "pretrained={oryx}"],
                 "Hugging Face hub", id="lm-paper-group-offline", marks=pytest.mark.evaluation_started),
    pytest.param(["eval", "lm", "--include_path", TASKS_DIR, "--tasks", "oryx_mqar", "--model_args",
                  "pretrained={tf},schedule=last:2"], "cannot run on this transformer model", id="lm-schedule-baseline"),
]


@pytest.mark.parametrize("argv,message", MISTAKES)
def test_user_mistakes_exit_2_and_log_nothing_complete(argv, message, short_model, store, tmp_path, capsys,
                                                        monkeypatch, request):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the paper group needs the hub: offline here on purpose
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    experiment = f"mistakes-{request.node.callspec.id}"
    paths = {"missing": str(tmp_path / "missing"), "oryx": str(short_model[0]), "tf": str(short_model[1])}
    argv = [a.format(**paths) for a in argv] + ["--tracking-uri", store, "--experiment", experiment]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err and "Traceback" not in err
    runs = runs_of(store, experiment)
    if request.node.get_closest_marker("evaluation_started"):  # failed while evaluating: a FAILED run says so
        assert all(r.info.status == "FAILED" for r in runs)
        assert not [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # and holds no result
    else:  # a mistake in the inputs is found before any run opens: nothing is left behind
        assert runs == []
