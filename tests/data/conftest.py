"""Fixtures of the data tests."""

import pytest
import torch


@pytest.fixture
def seed() -> int:
    """The seed tests/conftest.py drew for this test (so ORYX_TEST_SEED=N gives every task a fresh draw)."""
    return torch.initial_seed() % 2**31
