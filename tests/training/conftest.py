"""Fixtures of the training tests: a private runs dir per test, tiny run configs, the `oryx` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# A run small enough for seconds on one CPU core: the tiny preset on a small MQAR.
TINY = {
    "model": {"preset": "oryx-mamba2-tiny"},
    "data": {"kind": "mqar", "task": {"vocab_size": 64, "input_seq_len": 32, "num_kv_pairs": 4}, "val_examples": 16},
    "schedule": {"train": "mixed:8:0.2:0.2"},
    "optim": {"lr": 3e-3, "warmup_steps": 2},
    "train": {"max_steps": 8, "batch_size": 8, "checkpoint_every": 4, "log_every": 1, "device": "cpu"},
    "tracking": {"enabled": False, "experiment": "test"},
}


def write_config(directory: Path, name: str = "run.yaml", **sections) -> Path:
    """TINY with `sections` over it (model and data replaced whole, the others merged key by key),
    out_dir under `directory`."""
    tree = {k: dict(v) for k, v in TINY.items()}
    tree["train"]["out_dir"] = str(directory / "out")
    for key, value in sections.items():
        tree[key] = value if key in ("model", "data") else {**tree.get(key, {}), **value}
    path = directory / name
    path.write_text(yaml.safe_dump(tree))
    return path


def oryx_env(**extra: str) -> dict[str, str]:
    """Environment of an `oryx` subprocess: one thread (tests run beside each other), no telemetry."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {**env, **extra}


def oryx(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    """Run `python -m oryx ARGS` to completion, capturing text output."""
    return subprocess.run([sys.executable, "-m", "oryx", *args], cwd=cwd, env=kw.pop("env", oryx_env()),
                          capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An initialised, empty MLflow SQLite store (creating one takes mlflow several seconds: done once,
    copied into each test that needs a store)."""
    from oryx.tracking.store import open_client

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    open_client(f"sqlite:///{path}")
    return path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch, empty_store) -> Path:
    """A private runs dir ($ORYX_RUNS_DIR) holding a fresh copy of the empty store."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(empty_store, runs / "mlflow.db")
    monkeypatch.setenv("ORYX_RUNS_DIR", str(runs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return runs
