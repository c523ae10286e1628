"""How an evaluation is recorded in MLflow (docs/architecture.md, "MLflow runs").

One parent run per command (tag oryx.kind=eval), one nested run per (task, schedule) with params task,
schedule, checkpoint, family, tag oryx.train_run_id where known; metrics `accuracy`,
`accuracy/<slice>:<value>`, `attention_fraction`, `attention_fraction/layer_<i>`, lm-eval's
`<task>/<metric>`; artifact `modes/modes.parquet` (evals.modelog columns).

MLflow refuses '=' in metric names, so a slice is written `<slice>:<value>` (analysis.runs reads both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from oryx.tracking import KIND_TAG, MODE_LOG_ARTIFACT, TRAIN_RUN_TAG, Tracker

if TYPE_CHECKING:
    import pandas as pd

_BAD_CHARS = re.compile(r"[^/\w.\- :]")  # what MLflow does not accept in a metric name


def metric_name(*parts: str) -> str:
    """Parts joined by '/', each with characters MLflow refuses replaced by '_'."""
    return "/".join(_BAD_CHARS.sub("_", str(p)) for p in parts)


def slice_metric(metric: str, slice_name: str, value) -> str:
    """'accuracy', 'num_kv_pairs', 8 -> 'accuracy/num_kv_pairs:8'."""
    return metric_name(metric, f"{slice_name}:{value}")


def log_task_run(
    parent: Tracker,
    task: str,
    schedule: str,
    checkpoint: str,
    family: str,
    metrics: Mapping[str, float],
    modes: pd.DataFrame | None = None,
    train_run_id: str | None = None,
    options: Mapping[str, object] | None = None,
) -> str | None:
    """One nested run under `parent` for a (task, schedule) pair; returns its run id. `modes` (the
    per-token log, its `run` column filled here) is stored as modes/modes.parquet when not empty;
    `options` (the task's settings, e.g. num_kv_pairs) become params `task.<name>`."""
    tags = {KIND_TAG: "eval"} | ({TRAIN_RUN_TAG: train_run_id} if train_run_id else {})
    with parent.child(f"{task} {schedule}", tags=tags) as run:
        run.log_params({"task": task, "schedule": schedule, "checkpoint": checkpoint, "family": family,
                        **{f"task.{k}": v for k, v in (options or {}).items()}})
        run.log_metrics(dict(metrics))
        if modes is not None and not modes.empty:
            run.log_dataframe(modes.assign(run=run.run_id or ""), MODE_LOG_ARTIFACT)
        return run.run_id
