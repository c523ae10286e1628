"""A tracking server: fail fast when it is not there at start; lose nothing when it goes away mid-run.

A real `mlflow server` (127.0.0.1, a free port) sits behind a small TCP relay that the test opens and
closes: closing it makes the server unreachable (connection refused) exactly as a crashed server does,
and reopening it on the same port brings the same server back.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from oryx.cli.main import main
from oryx.errors import OryxError
from oryx.tracking import start_run
from oryx.training.config import load_run_config
from oryx.training.trainer import Trainer
from tests.training.conftest import write_config
from tests.utils import free_port, mlflow_server


class Relay:
    """127.0.0.1:port -> 127.0.0.1:target, byte for byte, while open."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def open(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # shutdown wakes the thread blocked in accept(); close alone does not
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for c in self.conns:
            c.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def server(tmp_path_factory, empty_store):
    """(relay, backend store uri): an mlflow server reached through a relay."""
    root = tmp_path_factory.mktemp("server")
    shutil.copy(empty_store, root / "server.db")
    with mlflow_server(f"sqlite:///{root}/server.db", root / "server.log",
                       "--artifacts-destination", str(root / "artifacts")) as port:
        relay = Relay(port)
        relay.open()
        yield relay, f"sqlite:///{root}/server.db"


@pytest.fixture(autouse=True)
def _no_http_retries(monkeypatch):
    """mlflow's retry back-off would only slow these tests down; the tracker retries by itself."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _train(tmp_path, uri, hook):
    path = write_config(tmp_path, tracking={"enabled": True, "experiment": "server", "uri": uri, "retry_seconds": 0})
    return Trainer(load_run_config(path), path, hooks=[hook]).run()


def _steps(client, run_id, key="train/loss"):
    return [m.step for m in client.get_metric_history(run_id, key)]


def test_unreachable_server_fails_fast(tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(OryxError, match=f"tracking server {uri} cannot be reached"):
        start_run("x", uri=uri)
    path = write_config(tmp_path, tracking={"enabled": True, "uri": uri})
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: tracking server {uri} cannot be reached") and "Traceback" not in err
    assert time.monotonic() - start < 60
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing trained


def _train_through_outage(tmp_path, relay, down: int, up: int | None) -> dict:
    """Train 8 steps logging to the server through `relay`, closed after step `down` and reopened
    after step `up` (None: at the end, after the run closed its tracker)."""

    def outage(trainer, step, loss):
        if step == down:
            relay.close()
        if step == up:
            relay.open()

    try:
        return _train(tmp_path, f"http://127.0.0.1:{relay.port}", outage)
    finally:
        if up is None:
            relay.open()


def test_outage_mid_run_is_buffered_and_sent(tmp_path, runs_dir, server, capsys):
    relay, _ = server
    summary = _train_through_outage(tmp_path, relay, down=2, up=6)
    err = capsys.readouterr().err
    assert "is not answering" in err and "answers again: sent" in err
    client = MlflowClient(f"http://127.0.0.1:{relay.port}")
    assert _steps(client, summary["mlflow_run_id"]) == list(range(1, 9))     # nothing lost
    assert client.get_run(summary["mlflow_run_id"]).info.status == "FINISHED"


def test_server_gone_for_good_falls_back_to_local_store(tmp_path, runs_dir, server, capsys):
    relay, backend = server
    summary = _train_through_outage(tmp_path, relay, down=3, up=None)
    uri = f"http://127.0.0.1:{relay.port}"
    err = capsys.readouterr().err
    assert "did not answer" in err and f"written to the local store sqlite:///{runs_dir}/mlflow.db" in err
    remote = MlflowClient(backend)
    assert _steps(remote, summary["mlflow_run_id"]) == [1, 2, 3]            # sent before the outage
    local = MlflowClient(f"sqlite:///{runs_dir}/mlflow.db")
    (copy,) = local.search_runs([local.get_experiment_by_name("server").experiment_id])
    assert _steps(local, copy.info.run_id) == list(range(1, 9))              # everything, in the local store
    assert copy.data.params["schedule"] == "mixed:8:0.2:0.2" and copy.info.status == "FINISHED"
    assert copy.data.tags["oryx.fallback_of"] == f"{uri} {summary['mlflow_run_id']}"
    assert {a.path for a in local.list_artifacts(copy.info.run_id, "config")} == {"config/run.yaml", "config/run_config.yaml"}
