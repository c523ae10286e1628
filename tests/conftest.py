"""Test settings: offline hubs, no telemetry, one thread per xdist worker, fresh seeds per test."""

import os
import zlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # xdist runs one worker per core


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    """Each test draws its own random inputs from a seed derived from its id (reproducible);
    ORYX_TEST_SEED=N shifts every seed, for a fresh draw of the whole suite."""
    seed = (zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("ORYX_TEST_SEED", "0"))) % 2**31
    torch.manual_seed(seed)
    yield
