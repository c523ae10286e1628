"""Per-token mode logs: the `modes/modes.parquet` artifact of an eval run, and summaries of it.

Columns (evals/modelog.py, docs/architecture.md): run, task, example, request, layer, position, token,
mode (True = attention), router_score, correct (the prediction made at this position, of the next token;
null where there is no target), role (the synthetic task's role of the position; null for text).

    log = load_mode_log(store, run_id)
    routing_grid(log, example=0)          # layer x position bool grid, the tokens, and correctness
    attention_by_role(log)                # attention fraction of each role (key, value, query; needle...)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.runs import Store, get_run
from oryx.errors import OryxError
from oryx.tracking import MODE_LOG_ARTIFACT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("example", "layer", "position", "token", "mode")


def read_mode_log(path: str | Path) -> pd.DataFrame:
    """A mode log parquet file as a frame; a missing, unreadable or incomplete file is an OryxError."""
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise OryxError(f"no mode log at {path}")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise OryxError(f"{path} is not a readable parquet mode log: {e}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise OryxError(f"{path} lacks mode log column(s) {', '.join(missing)}")
    return frame


def load_mode_log(store: Store, run_id: str) -> pd.DataFrame:
    """The mode log of an eval run (its `modes/modes.parquet` artifact), with a `run_id` column."""
    from mlflow.exceptions import MlflowException

    get_run(store, run_id)  # an unknown run is an OryxError naming it
    with tempfile.TemporaryDirectory(prefix="oryx-modes-") as tmp:
        try:
            local = store.client.download_artifacts(run_id, MODE_LOG_ARTIFACT, tmp)
        except (MlflowException, OSError):
            raise OryxError(f"run {run_id} has no {MODE_LOG_ARTIFACT} artifact (evaluate with the mode log "
                            f"switched on)") from None
        frame = read_mode_log(local)
    frame["run_id"] = run_id
    return frame


@dataclass
class RoutingGrid:
    """One example's routing: modes bool [L, T] (True = attention), tokens int [T], correct [T] as
    1.0 / 0.0 / NaN (right, wrong, no target), roles [T] (None for text)."""

    modes: np.ndarray
    tokens: np.ndarray
    correct: np.ndarray
    roles: list[str | None]


def routing_grid(log: pd.DataFrame, example: int, task: str | None = None, request: int = 0) -> RoutingGrid:
    """The layer x position modes of one logged example (of `task` when the log has several)."""
    import numpy as np

    rows = log[log["example"] == example]
    if task is not None:
        rows = rows[rows["task"] == task]
    if "request" in rows.columns:
        rows = rows[rows["request"] == request]
    if "task" in rows.columns and rows["task"].nunique() > 1:
        raise OryxError(f"example {example} is logged for several tasks ({', '.join(sorted(rows['task'].unique()))}); "
                        f"name one with task=")
    if rows.empty:
        logged = sorted(log["example"].unique().tolist())
        raise OryxError(f"example {example} is not in this mode log (logged examples: {logged[:20]})")
    grid = rows.pivot_table(index="layer", columns="position", values="mode", aggfunc="first")
    first = rows[rows["layer"] == rows["layer"].min()].sort_values("position")
    correct = first["correct"].astype("Float64").to_numpy(dtype=float, na_value=np.nan) \
        if "correct" in first.columns else np.full(len(first), np.nan)
    roles = first["role"].astype(object).where(first["role"].notna(), None).tolist() \
        if "role" in first.columns else [None] * len(first)
    return RoutingGrid(grid.to_numpy(dtype=bool), first["token"].to_numpy(), correct, roles)


def attention_by_role(log: pd.DataFrame, by: tuple[str, ...] = ("task",)) -> pd.DataFrame:
    """Attention fraction per token role: columns *by, role, positions, attention_fraction.

    Counts every (layer, position) row with a role; `by` adds grouping columns of the log (e.g. 'run_id',
    'layer'). A log without roles (text tasks) is an OryxError."""
    if "role" not in log.columns or log["role"].isna().all():
        raise OryxError("this mode log has no token roles (only synthetic tasks such as mqar and niah log them)")
    keys = [c for c in by if c in log.columns] + ["role"]
    rows = log[log["role"].notna()]
    grouped = rows.groupby(keys, observed=True)["mode"]
    out = grouped.agg(positions="size", attention_fraction="mean").reset_index()
    return out.sort_values(keys).reset_index(drop=True)
