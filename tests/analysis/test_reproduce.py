"""`oryx reproduce` on the reduced test preset (tests/analysis/reproduce_preset.py), end to end in one test
(so the two-minute run is made once, whichever xdist worker takes it): a real run SIGKILLed in the middle
of a training, rerun to the end (the ledger skips finished stages, the trainer resumes from its
checkpoint), its tables, figures and ledger checked, a rerun that skips everything, and the notebooks
executed on the store those real runs made. Then the presets' own checks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from oryx.cli.main import main
from oryx.reproduce.preset import PRESET_DIR, load_preset
from tests.analysis.reproduce_preset import write_test_preset
from tests.analysis.test_notebooks import NOTEBOOKS, execute

STAGES = ["train/oryx-mqar", "train/transformer-text", "retrieval/mqar/oryx-mqar", "lm/transformer-text"]


def _command(preset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "oryx", "reproduce", "--preset", str(preset), "--out", str(out)]


def _kill_mid_training(preset: Path, out: Path, env: dict) -> None:
    """Start a reproduction; SIGKILL it once the first training has a checkpoint but is not finished."""
    proc = subprocess.Popen(_command(preset, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    train = out / "train" / "oryx-mqar"
    deadline = time.monotonic() + 240
    try:
        while not list((train / "checkpoints").glob("step-*")):
            assert proc.poll() is None, "the reproduction ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "ledger.json").exists()  # no stage had finished
    assert not (train / "summary.json").exists(), "killed too late: the training had finished"


def _check_resumed_training(out: Path) -> None:
    ledger = json.loads((out / "ledger.json").read_text())
    assert list(ledger["stages"]) == STAGES
    assert ledger["stages"]["train/oryx-mqar"]["outputs"]["step"] == 16  # budget 4096 / (batch 8 x 32 positions)
    assert ledger["stages"]["train/transformer-text"]["outputs"]["step"] == 8  # 4096 / (8 x 64)
    lines = (out / "train" / "oryx-mqar" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if "train/loss" in line]
    assert steps[-1] == 16 and steps.count(16) == 1


def _check_tables_and_figures(out: Path, output: str) -> None:
    retrieval = pd.read_csv(out / "tables" / "retrieval.csv")
    assert retrieval["schedule"].tolist() == ["all_linear", "last:16"]
    assert retrieval["mqar attention_fraction"].tolist() == pytest.approx([0.0, 0.5])  # last 16 of 32
    assert retrieval["mqar accuracy"].between(0, 1).all()
    lm = pd.read_csv(out / "tables" / "lm.csv")
    assert lm["family"].tolist() == ["transformer"]
    assert lm["avg"].iloc[0] == pytest.approx(lm[["oryx_cloze acc", "oryx_cloze acc_norm"]].iloc[0].mean())
    for name in ("accuracy_vs_attention", "routing", "attention_by_role", "training_curves"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("lm", "retrieval"):
        assert (out / "tables" / f"{name}.md").read_text().splitlines()[0] in output  # the tables were printed
    assert "[1/4] train/oryx-mqar" in output and "[4/4] lm/transformer-text" in output


def test_reproduce_killed_resumed_reported(tmp_path):
    preset, out = write_test_preset(tmp_path), tmp_path / "out"
    env = {**os.environ, "ORYX_RUNS_DIR": str(tmp_path / "runs"), "MPLBACKEND": "Agg", "COLUMNS": "120"}
    env.pop("MLFLOW_TRACKING_URI", None)
    _kill_mid_training(preset, out, env)

    done = subprocess.run(_command(preset, out), env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_resumed_training(out)
    _check_tables_and_figures(out, done.stdout)

    again = subprocess.run(_command(preset, out), env=env, capture_output=True, text=True, timeout=200)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(f"{stage}: done earlier" in again.stdout for stage in STAGES)
    assert "retrieval table" in again.stdout

    for path in NOTEBOOKS:  # the notebooks on the store of real training and evaluation runs
        execute(path, tmp_path / path.stem, {"ORYX_RUNS_DIR": str(tmp_path / "runs")})


@pytest.mark.parametrize("name", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_shipped_presets_are_valid(name):
    preset = load_preset(name)
    assert preset.name == name and preset.train


@pytest.mark.parametrize("preset", ["gpu-small", "gpu-lm", "gpu-retrieval", "paper-1.4b"])
def test_gpu_presets_refuse_without_cuda(preset, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["reproduce", "--preset", preset, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CUDA" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # refused before writing anything


@pytest.mark.parametrize("text, message", [
    pytest.param(None, "unknown preset 'nope'", id="unknown-name"),
    pytest.param("description: x\ndevice: cpu\n", "resources: Field required", id="missing-key"),
    pytest.param("[1, 2]", "must hold a mapping", id="not-a-mapping"),
    pytest.param("description: x\ndevice: tpu\nresources: r\ntoken_budget: 1\ntrain: [{name: a, config: c.yaml}]\n",
                 "device", id="bad-device"),
    pytest.param("description: x\ndevice: cpu\nresources: r\ntoken_budget: 1\ntrain: [{name: a, config: c.yaml}]\n"
                 "retrieval: [{task: mqar, models: [b]}]\n", "evaluates b", id="unknown-model"),
    pytest.param("description: x\ndevice: cpu\nresources: r\ntoken_budget: 1\ntrain: [{name: a, config: c.yaml}]\n"
                 "colour: red\n", "colour: unknown key", id="unknown-key"),
    pytest.param("description: x\ndevice: cpu\nresources: r\ntoken_budget: 1\ntrain: [{name: a, config: c.yaml}]\n",
                 "config file", id="missing-run-config"),
])
def test_bad_presets_are_one_line_errors(text, message, tmp_path, capsys):
    path = tmp_path / "p.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["reproduce", "--preset", "nope" if text is None else str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize("ledger, message", [
    pytest.param(json.dumps({"preset": "other", "stages": {}}), "preset 'other'", id="another-preset"),
    pytest.param('{"preset": "smoke", "sta', "is not valid JSON (corrupt?)", id="corrupt"),
])
def test_a_foreign_or_corrupt_ledger_is_refused(ledger, message, tmp_path, capsys):
    (tmp_path / "ledger.json").write_text(ledger)
    assert main(["reproduce", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert (tmp_path / "ledger.json").read_text() == ledger  # nothing already written is lost


def test_parallel_training_and_two_settings_of_a_task(tmp_path):
    """`parallel: 2` trains both models at once (each `oryx train` in its own process, its log kept), and two
    retrieval entries of one task get stages of their own (`mqar`, `mqar.2`), with the oracle in the sweep:
    its measured fraction is the queries' share in each setting."""
    write_test_preset(tmp_path)
    mqar = tmp_path / "mqar.yaml"
    preset = {
        "description": "parallel test", "device": "cpu", "resources": "2 CPU cores", "parallel": 2,
        "token_budget": 512,  # two steps of 8 x 32
        "train": [{"name": "a", "config": str(mqar)}, {"name": "b", "config": str(mqar), "overrides": ["train.seed=1"]}],
        "retrieval": [
            {"task": "mqar", "models": ["a", "b"], "schedules": ["oracle:query"], "n": 4, "log_modes": 0,
             "options": {"num_kv_pairs": 4, "input_seq_len": 32, "vocab_size": 64}},
            {"task": "mqar", "models": ["a"], "schedules": ["oracle:query"], "n": 4, "log_modes": 0,
             "options": {"num_kv_pairs": 2, "input_seq_len": 32, "vocab_size": 64}},
        ],
    }
    path = tmp_path / "parallel.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    env = {**os.environ, "ORYX_RUNS_DIR": str(tmp_path / "runs"), "MPLBACKEND": "Agg", "COLUMNS": "160"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "out"
    done = subprocess.run(_command(path, out), env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stages = json.loads((out / "ledger.json").read_text())["stages"]
    assert sorted(stages) == ["retrieval/mqar.2/a", "retrieval/mqar/a", "retrieval/mqar/b", "train/a", "train/b"]
    assert stages["train/a"]["outputs"]["step"] == stages["train/b"]["outputs"]["step"] == 2
    assert all((out / "logs" / f"{m}.log").stat().st_size > 0 for m in ("a", "b"))
    table = pd.read_csv(out / "tables" / "retrieval.csv")
    fractions = {c: table[c].dropna().unique().tolist() for c in table if c.endswith("attention_fraction")}
    assert fractions == {"mqar input_seq_len=32 num_kv_pairs=2 attention_fraction": [2 / 32],
                         "mqar input_seq_len=32 num_kv_pairs=4 attention_fraction": [4 / 32]}
    long = pd.read_csv(out / "tables" / "retrieval_results.csv")
    assert long["oracle"].all() and set(long["seed"]) == {0, 1} and long["mlflow_run"].notna().all()


def test_a_bad_model_config_in_a_parallel_preset_stops_it_cleanly(tmp_path):
    """The second model's config is refused while the first already trains: one `error:` line naming the
    key, exit 2, and the running training is stopped (nothing recorded as done)."""
    write_test_preset(tmp_path)
    mqar = tmp_path / "mqar.yaml"
    preset = {"description": "parallel failure", "device": "cpu", "resources": "2 CPU cores", "parallel": 2,
              "token_budget": 256,
              "train": [{"name": "ok", "config": str(mqar)},
                        {"name": "bad", "config": str(mqar), "overrides": ["optim.lr=-1"]}]}
    path = tmp_path / "fails.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    env = {**os.environ, "ORYX_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "out"
    done = subprocess.run(_command(path, out), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: optim.lr")
    assert (out / "logs" / "ok.log").exists() and not (out / "ledger.json").exists()
