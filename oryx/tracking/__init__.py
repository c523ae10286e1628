"""Experiment tracking with MLflow: where the store is, and the `Tracker` every stage logs through.

    from oryx.tracking import resolve_tracking_uri, start_run
    tracker = start_run("oryx", run_name="smoke", tags={"oryx.kind": "train"})

Telemetry is off (MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK) unless the user set those variables.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from oryx.tracking.store import embedded_uri, is_server, resolve_tracking_uri, runs_dir
from oryx.tracking.tracker import (
    BASELINE_TAG,
    FAMILY_TAG,
    KIND_TAG,
    LINEAR_KINDS_TAG,
    MODE_LOG_ARTIFACT,
    PARENT_TAG,
    TRAIN_LOSS,
    TRAIN_RUN_TAG,
    Tracker,
    model_tags,
    start_run,
)

__all__ = [
    "BASELINE_TAG", "FAMILY_TAG", "KIND_TAG", "LINEAR_KINDS_TAG", "MODE_LOG_ARTIFACT", "PARENT_TAG", "TRAIN_LOSS",
    "TRAIN_RUN_TAG", "Tracker", "embedded_uri", "is_server", "model_tags", "resolve_tracking_uri", "runs_dir", "start_run",
]
