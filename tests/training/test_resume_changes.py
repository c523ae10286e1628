"""Resuming with another command than the run's: a changed run config is refused (out_dir untouched)
unless it is one of the keys a resume may change or train.allow_config_change accepts it; a checkpoint
without a readable run_config.yaml resumes with a warning. And MLflow holds one entry per step of every
metric after a resume that redoes steps it already logged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from oryx.cli.main import main
from oryx.fileio import sha256
from oryx.training import checkpoints as ckpt
from oryx.training.trainer import CONFIG_FILE
from tests.training.conftest import write_config
from tests.training.test_data_sources import _corpus_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    """Finished 8-step runs (checkpoints at 4 and 8), by name: their config files (out_dir beside them)."""
    runs = {"mqar": write_config(tmp_path_factory.mktemp("mqar")),
            "corpus": _corpus_config(tmp_path_factory.mktemp("corpus"))}
    for path in runs.values():
        assert main(["train", str(path)]) == 0
    return runs


def _copy(config: Path, tmp_path: Path) -> Path:
    """The run's out_dir copied to tmp_path/out (resumed there with train.out_dir=..., a resumable key)."""
    shutil.copytree(config.parent / "out", tmp_path / "out")
    return tmp_path / "out"


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with its modification time and, for files, bytes."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _train(config: Path, out: Path, overrides: list[str], capsys) -> tuple[int, str]:
    """`oryx train CONFIG train.out_dir=OUT OVERRIDES` in this process: (exit status, stderr)."""
    capsys.readouterr()
    status = main(["train", str(config), f"train.out_dir={out}", *overrides])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("run, overrides, expected", [
    pytest.param("mqar", ["optim.lr=0.001"], ["optim.lr: 0.003 -> 0.001"], id="lr"),
    pytest.param("mqar", ["optim.betas=[0.8, 0.9]"], ["optim.betas: [0.9, 0.95] -> [0.8, 0.9]"], id="betas"),
    pytest.param("mqar", ["train.batch_size=4"], ["train.batch_size: 8 -> 4"], id="batch-size"),
    pytest.param("mqar", ["train.seed=1"], ["train.seed: 0 -> 1"], id="seed"),
    pytest.param("mqar", ["train.precision=bf16"], ['train.precision on cpu: "fp32" -> "bf16"'], id="precision"),
    pytest.param("mqar", ["schedule.train=mixed:8:0.5:0.2"],
                 ['schedule.train: "mixed:8:0.2:0.2" -> "mixed:8:0.5:0.2"'], id="training-schedule"),
    pytest.param("mqar", ["data.task.num_kv_pairs=2"], ["data.task.num_kv_pairs: 4 -> 2"], id="task"),
    pytest.param("mqar", ["data.val_examples=8"], ["data.val_examples: 16 -> 8"], id="validation-set"),
    pytest.param("corpus", ["data.path={tmp}/other"], ['data.path: "{run}/corpus" -> "{tmp}/other"'], id="data-path"),
    pytest.param("mqar", ["model.preset=oryx-gdn-tiny"],
                 ['model.preset: "oryx-mamba2-tiny" -> "oryx-gdn-tiny"', "model.mixers: ", "a run's model cannot change"],
                 id="model-preset"),
    pytest.param("mqar", ["model.d_model=32"], ["model.d_model: 64 -> 32", "a run's model cannot change"], id="model-width"),
    pytest.param("mqar", ["model.d_model=32", "optim.lr=0.001", "train.allow_config_change=true"],
                 ["model.d_model: 64 -> 32", "a run's model cannot change"], id="model-even-when-allowed"),
    pytest.param("mqar", ["data.val_examples=8", "optim.lr=0.001", "optim.warmup_steps=3", "optim.weight_decay=0",
                          "optim.grad_clip=0.5", "train.seed=1", "train.batch_size=4"],
                 ["data.val_examples: 16 -> 8; optim.lr: 0.003 -> 0.001; optim.warmup_steps: 2 -> 3; "
                  "optim.weight_decay: 0.1 -> 0.0; optim.grad_clip: 1.0 -> 0.5 and 2 more;"], id="seven-keys"),
])
def test_changed_config_is_refused(finished, tmp_path, capsys, run, overrides, expected):
    """One error line naming each key with both values and the ways on; nothing in out_dir changes."""
    config = finished[run]
    out = _copy(config, tmp_path)
    before = _snapshot(out)
    status, err = _train(config, out, [o.format(tmp=tmp_path) for o in overrides], capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {out} holds a run saved with another config "
                          f"({ckpt.step_dir(out, 8) / CONFIG_FILE}): ") and "use a new train.out_dir" in err
    for text in expected:
        assert text.format(run=config.parent, tmp=tmp_path) in err
    assert _snapshot(out) == before
    assert not (tmp_path / "other").exists()                         # no corpus was prepared either


@pytest.mark.parametrize("overrides", [
    pytest.param([], id="out-dir-only"),
    pytest.param(["train.max_steps=10"], id="max-steps"),
    pytest.param(["train.checkpoint_every=1", "train.keep_checkpoints=5"], id="checkpoint-frequency"),
    pytest.param(["train.log_every=2", "train.val_every=1"], id="logging-and-validation-frequency"),
    pytest.param(["train.device=auto"], id="device"),
    pytest.param(["train.micro_batch_size=4", "train.gradient_checkpointing=true"], id="memory-layout"),
    pytest.param(["train.strategy=fsdp"], id="strategy"),
    pytest.param(["train.compile=true"], id="compile",   # importing torch.compile warns about torch.jit
                 marks=pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")),
    pytest.param(["schedule.val=[last:4]"], id="more-validation-modes"),
    pytest.param(["tracking.uri=sqlite:///elsewhere.db", "tracking.retry_seconds=5", "tracking.run_name=x",
                  "tracking.experiment=y"], id="tracking"),
    pytest.param(["model.d_model=64"], id="the-preset-value-spelled-out"),
    pytest.param(["train.allow_config_change=true"], id="the-switch-itself"),
    pytest.param(["train.precision=fp32"], id="precision-spelled-as-resolved"),   # saved: auto, on the CPU fp32
])
def test_resumable_keys_may_change(finished, tmp_path, capsys, overrides):
    out = _copy(finished["mqar"], tmp_path)
    status, err = _train(finished["mqar"], out, overrides, capsys)
    assert status == 0 and "resumed from step 8" in err and "config" not in err.replace(str(tmp_path), ""), err


def test_max_steps_below_the_checkpoint_is_refused(finished, tmp_path, capsys):
    out = _copy(finished["mqar"], tmp_path)
    before = _snapshot(out)
    status, err = _train(finished["mqar"], out, ["train.max_steps=4"], capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert f"train.max_steps=4 is below the step of the checkpoint found in {out} (8): give at least 8" in err
    assert _snapshot(out) == before


def test_resume_into_a_new_mlflow_run_logs_the_run(tmp_path, runs_dir, capsys):
    """A resume whose MLflow run is not in the (changed) experiment starts a new run there: it gets the
    params and config a fresh run gets, beside the resume tag."""
    config, out = write_config(tmp_path, tracking={"enabled": True, "experiment": "t"}), tmp_path / "out"
    assert _train(config, out, ["train.max_steps=4"], capsys)[0] == 0
    status, err = _train(config, out, ["train.max_steps=6", "tracking.experiment=elsewhere"], capsys)
    assert status == 0 and "resumed from step 4" in err, err
    client = MlflowClient(f"sqlite:///{runs_dir}/mlflow.db")
    run = client.get_run(json.loads((out / "summary.json").read_text())["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "elsewhere"
    assert run.data.tags["oryx.resumed_at_step"] == "4" and run.data.params["optim.lr"] == "0.003"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config"}


def _rewrite(checkpoint: Path, name: str, text: str | None) -> None:
    """Replace (None: delete) the checkpoint's file `name` by `text`, keeping the manifest true."""
    path, manifest_path = checkpoint / name, checkpoint / ckpt.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    if text is None:
        path.unlink()
        del manifest["files"][name]
    else:
        path.write_text(text)
        manifest["files"][name] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    manifest_path.write_text(json.dumps(manifest))


def _edit_saved_config(checkpoint: Path, edit) -> None:
    """Replace (None: delete) the checkpoint's run_config.yaml by edit(tree), keeping the manifest true."""
    tree = edit(yaml.safe_load((checkpoint / CONFIG_FILE).read_text()))
    _rewrite(checkpoint, CONFIG_FILE, None if tree is None else yaml.safe_dump(tree))


@pytest.mark.parametrize("edit, warning", [
    pytest.param(lambda tree: None, "has no run_config.yaml (an older version wrote it)", id="written-before-it-existed"),
    pytest.param(lambda tree: {**tree, "train": {**tree["train"], "bogus": 1}},
                 "holds a run_config.yaml this version cannot read (train.bogus: unknown key)", id="unknown-key"),
    pytest.param(lambda tree: {**tree, "model": {"preset": "oryx-gone-tiny"}},
                 "holds a run_config.yaml this version cannot read (model.preset: unknown preset", id="unknown-preset"),
])
def test_unreadable_saved_config_resumes_with_a_warning(finished, tmp_path, capsys, edit, warning):
    out = _copy(finished["mqar"], tmp_path)
    _edit_saved_config(ckpt.step_dir(out, 8), edit)
    status, err = _train(finished["mqar"], out, ["optim.lr=0.001"], capsys)
    assert status == 0 and "resumed from step 8" in err, err
    assert f"oryx: warning: {ckpt.step_dir(out, 8)} {warning}" in err and "resuming without comparing" in err


def test_accepted_change_is_the_runs_config_from_then_on(tmp_path, runs_dir, capsys):
    """Refused: the MLflow run is untouched too. Accepted with the switch: an MLflow tag says what changed
    where, and the next checkpoint holds the new config, so later resumes need no switch."""
    config, out = write_config(tmp_path, tracking={"enabled": True, "experiment": "t"}), tmp_path / "out"
    assert _train(config, out, ["train.max_steps=4"], capsys)[0] == 0
    client = MlflowClient(f"sqlite:///{runs_dir}/mlflow.db")
    run_id = json.loads((out / "summary.json").read_text())["mlflow_run_id"]
    before, run_before = _snapshot(out), client.get_run(run_id)

    assert _train(config, out, ["train.max_steps=6", "optim.lr=0.001"], capsys)[0] == 2
    after = client.get_run(run_id)
    assert _snapshot(out) == before and after.data.tags == run_before.data.tags
    assert (after.info.status, after.info.end_time) == (run_before.info.status, run_before.info.end_time)

    status, err = _train(config, out, ["train.max_steps=6", "optim.lr=0.001", "train.allow_config_change=true"], capsys)
    assert status == 0 and "with a changed config (train.allow_config_change): optim.lr: 0.003 -> 0.001" in err, err
    assert client.get_run(run_id).data.tags["oryx.config_change.4"] == "optim.lr: 0.003 -> 0.001"
    assert yaml.safe_load((ckpt.step_dir(out, 6) / CONFIG_FILE).read_text())["optim"]["lr"] == 0.001

    status, err = _train(config, out, ["train.max_steps=7", "optim.lr=0.001"], capsys)
    assert status == 0 and "resumed from step 6" in err and "config" not in err.replace(str(tmp_path), ""), err
    assert [k for k in client.get_run(run_id).data.tags if k.startswith("oryx.config_change")] == ["oryx.config_change.4"]


# ---- MLflow after a resume that redoes logged steps ----------------------------------------------------------
EVERY = ["train.checkpoint_every=2", "train.val_every=2", "train.keep_checkpoints=4"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, empty_store) -> Path:
    """A finished 8-step run (checkpoints at 2, 4, 6, 8) that logged every step to its own store in runs/."""
    folder = tmp_path_factory.mktemp("logged")
    (folder / "runs").mkdir()
    shutil.copy(empty_store, folder / "runs" / "mlflow.db")
    config = write_config(folder, tracking={"enabled": True, "experiment": "t"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORYX_RUNS_DIR", str(folder / "runs"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["train", str(config), "train.max_steps=8", *EVERY]) == 0
    return folder


@pytest.mark.parametrize("lost, rerun_steps, val_every, val_steps", [
    pytest.param([8], 8, 2, [2, 4, 6, 8], id="newest-checkpoint-lost"),
    pytest.param([8, 6], 8, 2, [2, 4, 6, 8], id="two-checkpoints-lost"),
    pytest.param([8, 6], 10, 2, [2, 4, 6, 8, 10], id="two-lost-and-extended"),
    # validating more often after the resume: the steps the killed run did not validate are sent
    pytest.param([8, 6], 8, 1, [2, 4, 5, 6, 7, 8], id="two-lost-then-validating-every-step"),
])
def test_metric_steps_stay_unique_after_a_resume(logged, tmp_path, monkeypatch, capsys, lost, rerun_steps,
                                                 val_every, val_steps):
    """Losing the newest checkpoints of a run that logged everything (as a kill after the logging does)
    makes the rerun redo logged steps: MLflow keeps one entry per step of each key, metrics.jsonl is
    rewritten from the checkpoint on, and the steps past the old end are logged."""
    for name in ("runs", "out"):
        shutil.copytree(logged / name, tmp_path / name)
    monkeypatch.setenv("ORYX_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    for step in lost:
        shutil.rmtree(ckpt.step_dir(out, step))
    status, err = _train(logged / "run.yaml", out, [f"train.max_steps={rerun_steps}", *EVERY,
                                                    f"train.val_every={val_every}"], capsys)
    assert status == 0 and f"resumed from step {8 - 2 * len(lost)}" in err, err

    client = MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db")
    run = client.get_run(json.loads((out / "summary.json").read_text())["mlflow_run_id"])
    histories = {key: [m.step for m in client.get_metric_history(run.info.run_id, key)] for key in run.data.metrics}
    assert {"train/loss", "val/loss/all_linear"} <= set(histories)
    for key, steps in histories.items():
        assert len(steps) == len(set(steps)), f"{key}: {steps}"                 # one entry per step
        expected = list(range(1, rerun_steps + 1)) if key.startswith("train/") else val_steps
        assert sorted(steps) == expected, f"{key}: {steps}"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train/loss" in r] == list(range(1, rerun_steps + 1))


def test_redone_steps_with_an_accepted_change_are_logged_again(logged, tmp_path, monkeypatch, capsys):
    """With a changed config the redone steps differ from the killed run's: MLflow gets the new values
    (its latest value of a key is the newest), as metrics.jsonl has them."""
    for name in ("runs", "out"):
        shutil.copytree(logged / name, tmp_path / name)
    monkeypatch.setenv("ORYX_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    for step in (8, 6):
        shutil.rmtree(ckpt.step_dir(out, step))
    status, err = _train(logged / "run.yaml", out, ["train.max_steps=8", *EVERY, "optim.lr=0.03",
                                                    "train.allow_config_change=true"], capsys)
    assert status == 0 and "resumed from step 4" in err, err
    client = MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db")
    run = client.get_run(json.loads((out / "summary.json").read_text())["mlflow_run_id"])
    records = {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "train/loss" in r}
    history = client.get_metric_history(run.info.run_id, "train/loss")
    for step in range(5, 9):
        values = [m.value for m in sorted(history, key=lambda m: m.timestamp) if m.step == step]
        assert len(values) == 2 and values[-1] == pytest.approx(records[step]["train/loss"]), (step, values)
    assert run.data.metrics["train/loss"] == pytest.approx(records[8]["train/loss"])


@pytest.mark.parametrize("saved, status, message", [
    # a run saved where `precision: auto` meant bf16 (on CUDA), resumed here on the CPU (fp32)
    pytest.param("bf16", 2, 'train.precision on cpu: "bf16" -> "fp32"', id="auto-resolved-otherwise"),
    pytest.param("fp32", 0, "resumed from step 8", id="same-precision"),
    pytest.param(None, 0, "resumed from step 8", id="state-of-an-earlier-version"),
])
def test_precision_is_compared_as_resolved_on_the_device(finished, tmp_path, capsys, saved, status, message):
    """train.device may change on a resume, but what `precision: auto` resolves to there may not."""
    out = _copy(finished["mqar"], tmp_path)
    checkpoint = ckpt.step_dir(out, 8)
    state = json.loads((checkpoint / ckpt.STATE_FILE).read_text())
    assert state["precision"] == "fp32"                      # what this CPU run recorded
    if saved is None:
        del state["precision"]
    else:
        state["precision"] = saved
    _rewrite(checkpoint, ckpt.STATE_FILE, json.dumps(state))
    got, err = _train(finished["mqar"], out, [], capsys)
    assert got == status and message in err, err

