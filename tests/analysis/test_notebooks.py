"""The notebooks run top to bottom headless against a real store, and are committed without outputs.
(tests/analysis/test_reproduce.py runs them once more on the store of real training and evaluation runs.)"""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def execute(path: Path, cwd: Path, env: dict[str, str]) -> list:
    """Run a notebook in the venv's own kernel with `env` set (the store is found as the commands find
    it); returns its outputs, after checking that no cell failed and that a figure was drawn."""
    import os

    from nbclient import NotebookClient

    cwd.mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    os.environ.update({"MPLBACKEND": "Agg", **env})
    try:
        book = nbformat.read(path, as_version=4)
        NotebookClient(book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} drew no figure"
    return outputs


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS][:3] == [
        "01_routing_explorer.ipynb", "02_attention_fraction_vs_accuracy.ipynb", "03_ablations.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_headless(path, made_store, tmp_path):
    """On the test store, found through $MLFLOW_TRACKING_URI as the commands find it."""
    outputs = execute(path, tmp_path, {"MLFLOW_TRACKING_URI": made_store.uri})
    assert made_store.uri in str(outputs)  # it read the store given


def test_a_notebook_started_in_the_project_finds_its_store(made_store, tmp_path, monkeypatch):
    """Jupyter starts a kernel in the notebook's folder: with no variable set, the notebook still opens the
    project's runs/mlflow.db (found up to the project root), as the commands run from the root do."""
    from oryx.tracking.store import sqlite_path

    for variable in ("MLFLOW_TRACKING_URI", "ORYX_RUNS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "runs").symlink_to(sqlite_path(made_store.uri).parent)
    outputs = execute(NOTEBOOKS[1], project / "notebooks", {})
    assert str(project / "runs" / "mlflow.db") in str(outputs)
