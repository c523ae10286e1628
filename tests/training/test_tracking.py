"""MLflow tracking: the store's location, what a training run logs, nested runs, several processes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from oryx.tracking import BASELINE_TAG, FAMILY_TAG, LINEAR_KINDS_TAG, Tracker, resolve_tracking_uri, start_run
from oryx.training.config import load_run_config
from oryx.training.trainer import Trainer
from tests.training.conftest import oryx_env, write_config


@pytest.mark.parametrize("explicit, env, expected", [
    pytest.param("http://x:1", "http://y:2", "http://x:1", id="explicit-wins"),
    pytest.param(None, "http://y:2", "http://y:2", id="environment"),
    pytest.param(None, None, "sqlite:///{runs}/mlflow.db", id="embedded"),
])
def test_resolve_tracking_uri(tmp_path, monkeypatch, explicit, env, expected):
    monkeypatch.setenv("ORYX_RUNS_DIR", str(tmp_path / "r"))
    if env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(explicit) == expected.format(runs=tmp_path / "r")


@pytest.mark.parametrize("cwd, expected", [
    pytest.param("project", "project/runs", id="project-root"),
    pytest.param("project/notebooks", "project/runs", id="a-notebook-folder-finds-the-project-store"),
    pytest.param("project/empty", "project/runs", id="any-subfolder"),
    pytest.param("elsewhere", "elsewhere/runs", id="outside-the-project"),
    pytest.param("outer/inner/sub", "outer/inner/sub/runs", id="not-past-the-project-root"),
])
def test_runs_dir_is_found_up_to_the_project_root(tmp_path, monkeypatch, cwd, expected):
    """Without $ORYX_RUNS_DIR: the nearest runs/ holding a store, from the working directory up to the
    first folder with .git or pyproject.toml; else ./runs (a store above the project root is not used)."""
    from oryx.tracking.store import runs_dir

    for folder in ("project/runs", "project/notebooks", "project/empty", "elsewhere", "outer/runs", "outer/inner/sub"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "project/pyproject.toml").write_text("")
    (tmp_path / "project/runs/mlflow.db").write_text("")
    (tmp_path / "outer/runs/mlflow.db").write_text("")          # a store above a project root: ignored
    (tmp_path / "outer/inner/pyproject.toml").write_text("")
    monkeypatch.delenv("ORYX_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path / cwd)
    assert runs_dir() == (tmp_path / expected).resolve()


def test_disabled_tracker_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORYX_RUNS_DIR", str(tmp_path / "runs"))
    tracker = start_run("x", enabled=False)
    assert tracker is not None and not tracker.enabled and tracker.run_id is None
    tracker.log_params({"a": 1})
    tracker.log_metrics({"m": 1.0}, step=1)
    tracker.log_dataframe(pd.DataFrame({"a": [1]}), "t/t.parquet")
    with tracker.child("c") as child:
        assert not child.enabled
    tracker.close()
    assert list(tmp_path.iterdir()) == [] and Tracker.disabled().flush()


def _client(runs_dir) -> MlflowClient:
    return MlflowClient(f"sqlite:///{runs_dir}/mlflow.db")


def test_training_run_contents_and_resume(tmp_path, runs_dir):
    """Params (flattened config, schedule, counts), metrics, artifacts; a resumed run continues the same
    MLflow run."""
    path = write_config(tmp_path, tracking={"enabled": True, "experiment": "t"})
    summary = Trainer(load_run_config(path, ["train.max_steps=4"]), path).run()
    client = _client(runs_dir)
    run = client.get_run(summary["mlflow_run_id"])
    assert summary["tracking_uri"] == f"sqlite:///{runs_dir}/mlflow.db" and run.info.status == "FINISHED"
    p = run.data.params
    assert p["model.d_model"] == "64" and p["model.vocab_size"] == "64" and p["train.max_steps"] == "4"
    assert p["schedule"] == "mixed:8:0.2:0.2" and p["model.preset"] == "oryx-mamba2-tiny"
    assert int(p["params.total"]) > 0 and 0.9 <= float(p["params.tied_fraction"]) < 1
    assert run.data.tags["oryx.kind"] == "train" and run.data.tags["mlflow.runName"] == "run"
    # what the model is, for analysis (oryx.tracking.model_tags)
    assert {k: run.data.tags[k] for k in (FAMILY_TAG, LINEAR_KINDS_TAG, BASELINE_TAG)} == {
        FAMILY_TAG: "oryx-mamba2", LINEAR_KINDS_TAG: "mamba2", BASELINE_TAG: "false"}
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in run.data.metrics}
    assert [s for s, _ in history["train/loss"]] == [1, 2, 3, 4]
    for key in ("train/lr", "train/tokens_per_s", "train/attention_fraction", "train/grad_norm"):
        assert len(history[key]) == 4, key
    for mode in ("all_linear", "all_attention", "schedule"):
        assert [s for s, _ in history[f"val/loss/{mode}"]] == [4]
    assert history["val/loss/all_linear"][0][1] == summary["val"]["val/loss/all_linear"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    assert artifacts == {"config/run.yaml", "config/run_config.yaml"}
    assert run.info.artifact_uri.startswith((runs_dir / "mlruns").as_uri())

    resumed = Trainer(load_run_config(path, ["train.max_steps=6"]), path).run()
    assert resumed["mlflow_run_id"] == summary["mlflow_run_id"]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert client.get_run(run.info.run_id).data.tags["oryx.resumed_at_step"] == "4"


def test_single_mixer_model_validates_its_own_mode(tmp_path, runs_dir):
    path = write_config(tmp_path, model={"preset": "transformer-tiny"}, schedule={"train": "native"},
                        tracking={"enabled": True, "experiment": "t"})
    summary = Trainer(load_run_config(path, ["train.max_steps=2", "train.checkpoint_every=2"]), path).run()
    assert set(summary["val"]) == {"val/loss/all_attention", "val/accuracy/all_attention"}
    assert _client(runs_dir).get_run(summary["mlflow_run_id"]).data.params["schedule"] == "native"


def test_nested_runs_and_dataframes(runs_dir):
    tracker = start_run("eval", run_name="parent", tags={"oryx.kind": "eval"})
    frame = pd.DataFrame({"example": [0, 0], "position": [3, 4], "mode": [True, False]})
    with tracker.child("mqar/last:8", tags={"task": "mqar"}) as child:
        child.log_params({"schedule": "last:8"})
        child.log_metrics({"accuracy": 0.75, "accuracy/num_kv_pairs:4": 1.0})
        child.log_dataframe(frame, "modes/modes.parquet")
    tracker.close()
    client = _client(runs_dir)
    sub = client.get_run(child.run_id)
    assert sub.data.tags["mlflow.parentRunId"] == tracker.run_id and sub.data.metrics["accuracy"] == 0.75
    local = client.download_artifacts(child.run_id, "modes/modes.parquet", str(runs_dir))
    pd.testing.assert_frame_equal(pd.read_parquet(local), frame)


def test_several_processes_open_a_new_store(tmp_path):
    """Three processes create the same fresh SQLite store at once (mlflow alone fails with 'duplicate
    column' errors here) and log to it."""
    code = ("import sys; from oryx.tracking import start_run\n"
            "t = start_run('x', run_name=sys.argv[1]); t.log_metrics({'m': 1.0}); t.close()")
    env = oryx_env(ORYX_RUNS_DIR=str(tmp_path / "runs"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    client = _client(tmp_path / "runs")
    runs = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["0", "1", "2"]
