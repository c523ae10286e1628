"""Where runs are tracked: the MLflow store a command talks to, and how to open it safely.

    resolve_tracking_uri()              # explicit uri > $MLFLOW_TRACKING_URI > the embedded store
    resolve_tracking_uri("http://127.0.0.1:5000")

The embedded store is `sqlite:///<runs dir>/mlflow.db` with artifacts in `<runs dir>/mlruns/`, where the
runs dir is `$ORYX_RUNS_DIR`, else the nearest `runs/` holding a store from the working directory up to
the project root, else `./runs`: no server needed, and `mlflow ui --backend-store-uri <uri>` shows it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from oryx.errors import OryxError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RUNS_DIR_ENV = "ORYX_RUNS_DIR"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
# How long a call to a tracking server may take, and how often mlflow retries it, unless the user set
# these: mlflow's defaults (7 retries, 120 s) would stall training for minutes when a server goes away.
SERVER_ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def runs_dir() -> Path:
    """`$ORYX_RUNS_DIR`, else the `runs/` holding a store in the working directory or in the nearest
    directory above it, up to the project root (the first holding .git or pyproject.toml), else ./runs;
    as an absolute path. The search is why a notebook, whose kernel starts in notebooks/, finds the store
    the commands wrote from the project root."""
    if os.environ.get(RUNS_DIR_ENV):
        return Path(os.environ[RUNS_DIR_ENV]).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "runs" / DB_FILE).is_file():
            return folder / "runs"
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            break
    return cwd / "runs"


def embedded_uri() -> str:
    """The embedded SQLite store under the runs dir."""
    return f"sqlite:///{runs_dir() / DB_FILE}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """An explicit `uri`, else `$MLFLOW_TRACKING_URI`, else the embedded store (`embedded_uri()`)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri()


def is_server(uri: str) -> bool:
    """True for a tracking server (http/https), False for a local store."""
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifact folder for a new experiment: `<store dir>/mlruns/<experiment>` beside a SQLite file
    (mlflow would otherwise use ./mlruns of whatever directory the command ran in); None (the server's
    own choice) for servers and other stores."""
    db = sqlite_path(uri)
    return (db.parent / ARTIFACTS_DIR / experiment).as_uri() if db is not None else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive file lock beside a SQLite store (nothing for other stores).

    mlflow creates a new SQLite store's tables on first use; two processes doing that at once fail with
    'duplicate column' errors (seen with mlflow 3.17), so the first use is serialised across processes.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    # the lock lives in the temp dir (same machine, same file for every process), not beside the store
    key = hashlib.sha1(str(db.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"oryx-mlflow-{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_client(uri: str) -> MlflowClient:
    """An MlflowClient on `uri`, checked to answer: a server that cannot be reached, or a store that
    cannot be opened, is an OryxError naming it (commands fail fast, before any training)."""
    if is_server(uri):
        for key, value in SERVER_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    try:
        with _store_lock(uri):  # the client creates a new store's tables as it is made
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
    except Exception as e:  # any failure here means the store is unusable; say which and why
        what = "tracking server" if is_server(uri) else "tracking store"
        raise OryxError(
            f"{what} {uri} cannot be reached: {first_line(e)} (start it, point tracking.uri or "
            f"MLFLOW_TRACKING_URI elsewhere, or set tracking.enabled=false)"
        ) from None
    return client


#: MLflow's experiment-type tag. Without it MLflow 3's UI opens an experiment on its GenAI traces
#: overview (empty here); `custom_model_development` opens the runs table.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """The id of experiment `name`, created (with `artifact_location`, tagged as model development)
    when missing; an existing experiment without the kind tag gets it. Two processes creating it at
    once both get the same id."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri, name),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            found = client.get_experiment_by_name(name)  # created by another process in between
            if found is None:
                raise
    if EXPERIMENT_KIND_TAG not in found.tags:  # made by an older version, or by MLflow itself
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return found.experiment_id


def first_line(e: Exception, limit: int = 300) -> str:
    """The first line of an exception's message (its type when empty), at most `limit` characters."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]
