"""A tracking store shared by the analysis tests (made once per session: it takes a few seconds)."""

import pytest

from tests.analysis.store import MadeStore, make_store


@pytest.fixture(scope="session")
def made_store(tmp_path_factory) -> MadeStore:
    return make_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")
