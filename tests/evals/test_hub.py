"""The hub probe (oryx.data.hub) that keeps lm-eval from waiting on an unreachable Hugging Face hub."""

from __future__ import annotations

import http.server
import os
import socket
import threading

import pytest

from evals.hub import OFFLINE_VARIABLES, use_offline_mode_if_unreachable


@pytest.fixture
def no_offline_variables(monkeypatch):
    for variable in OFFLINE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable in ("no_proxy", "NO_PROXY"):  # the local servers below are reached directly, proxy or not
        monkeypatch.setenv(variable, "127.0.0.1,localhost")


def test_unreachable_hub_switches_to_offline_mode(no_offline_variables, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: bind it, then close it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert use_offline_mode_if_unreachable() is True
    assert all(os.environ[v] == "1" for v in OFFLINE_VARIABLES)


def test_reachable_hub_stays_online(no_offline_variables, monkeypatch):
    """An HTTP server that answers (even with an error status, as this one does to HEAD) is reachable."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        assert use_offline_mode_if_unreachable() is False
    finally:
        server.shutdown()
        server.server_close()
    assert not any(v in os.environ for v in OFFLINE_VARIABLES)


@pytest.mark.parametrize("value,offline", [("1", True), ("0", False)], ids=["set-1", "set-0"])
def test_a_users_choice_stands(value, offline, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never probed
    assert use_offline_mode_if_unreachable() is offline
    assert "HF_DATASETS_OFFLINE" not in os.environ
