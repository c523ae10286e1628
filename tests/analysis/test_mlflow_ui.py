"""The MLflow UI as a user sees it: `mlflow server` on 127.0.0.1 over the store of a real small run (`oryx
eval retrieval` of a tiny model, with its mode log), its REST API, and the run page rendered by headless
Chromium (Debian's `chromium`, installed by .ci/run)."""

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils import mlflow_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERVER_START_S = 120  # mlflow server takes ~20 s to answer on a 2-core machine
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="headless Chromium is not installed (apt-get install chromium)"
)


def _get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


@dataclass
class EvalStore:
    uri: str
    run_id: str       # the nested run of (mqar, last:16)
    run_name: str
    parent_name: str


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory) -> EvalStore:
    """A store holding one real `oryx eval retrieval` run: a tiny Oryx model, MQAR, schedule last:16."""
    from analysis import open_store, results_frame
    from oryx import presets
    from oryx.cli.main import main
    from oryx.model import OryxForCausalLM

    tmp = tmp_path_factory.mktemp("ui-store")
    OryxForCausalLM(presets.get("oryx-mamba2-tiny", vocab_size=64)).save_pretrained(tmp / "model")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    assert main(["eval", "retrieval", str(tmp / "model"), "--task", "mqar", "--schedule", "last:16", "--n", "8",
                 "--set", "num_kv_pairs=4", "--set", "input_seq_len=32", "--log-modes", "2",
                 "--experiment", "ui-test", "--tracking-uri", uri]) == 0
    row = results_frame(open_store(uri)).iloc[0]
    return EvalStore(uri, row["run_id"], row["run_name"], "retrieval mqar")


@pytest.fixture(scope="module")
def server(eval_store, tmp_path_factory):
    """`mlflow server` over the test store; stopped (its whole process group) after the module."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with mlflow_server(eval_store.uri, log, start_timeout=SERVER_START_S) as port:
        yield f"http://127.0.0.1:{port}"


def test_rest_api_shows_run_metrics_and_mode_log(server, eval_store):
    run_id = eval_store.run_id
    run = _get(f"{server}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
    assert run["info"]["run_name"] == eval_store.run_name
    assert {p["key"]: p["value"] for p in run["data"]["params"]}["schedule"] == "last:16"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "accuracy/num_kv_pairs:4" in metrics
    assert metrics["attention_fraction"] == pytest.approx(0.5)  # the last 16 of 32 positions
    listing = _get(f"{server}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=modes")
    assert [f["path"] for f in listing["files"]] == ["modes/modes.parquet"]
    assert listing["files"][0]["file_size"] > 1000


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1400,900", "--virtual-time-budget=20000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_experiment_is_tagged_and_opens_on_the_runs_table(server, eval_store, tmp_path):
    """The project's experiments carry `mlflow.experimentKind=custom_model_development`; MLflow 3.17's UI
    opens an experiment on its (empty) GenAI overview unless the model-training workflow is chosen, which
    the `workflowType=machine_learning` link the README gives does: the runs table lists the parent run."""
    run = _get(f"{server}/api/2.0/mlflow/runs/get?run_id={eval_store.run_id}")["run"]
    experiment = _get(f"{server}/api/2.0/mlflow/experiments/get?experiment_id={run['info']['experiment_id']}")
    tags = {t["key"]: t["value"] for t in experiment["experiment"].get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    page = f"{server}/#/experiments/{run['info']['experiment_id']}?workflowType=machine_learning"
    dom = _chromium(["--dump-dom", page], tmp_path / "profile-runs")
    assert eval_store.parent_name in dom.stdout, f"the runs table does not list the run: {dom.stderr[-1000:]}"


def test_run_page_renders_the_run_name(server, eval_store, tmp_path):
    """The React app renders the run page (the DOM holds the run's name) and a screenshot of it is kept:
    at $ORYX_TEST_ARTIFACTS/mlflow_run_page.png when that is set, else in the test's tmp dir."""
    run_id = eval_store.run_id
    experiment = _get(f"{server}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]["info"]["experiment_id"]
    page = f"{server}/#/experiments/{experiment}/runs/{run_id}"
    dom = _chromium(["--dump-dom", page], tmp_path / "profile-dom")
    assert eval_store.run_name in dom.stdout, f"run name not in the rendered page: {dom.stderr[-1000:]}"
    assert eval_store.parent_name in dom.stdout  # the parent run, linked from the page
    out = Path(os.environ.get("ORYX_TEST_ARTIFACTS") or tmp_path) / "mlflow_run_page.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    _chromium([f"--screenshot={out}", page], tmp_path / "profile-shot")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert urllib.parse.urlparse(server).hostname == "127.0.0.1"
