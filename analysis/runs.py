"""MLflow runs as tidy pandas frames: what training and evaluation logged (docs/architecture.md names).

    from analysis import runs
    store = runs.open_store()                  # the store commands use (oryx.tracking.resolve_tracking_uri)
    runs.runs_frame(store, kind="train")       # one row per run: ids, tags, params, last metric values
    runs.results_frame(store)                  # one row per eval run x task x slice x schedule x metric
    runs.history_frame(store, ids, "train/loss")   # one row per logged step

Config columns are flattened: a result row carries its own params (`task`, `schedule`, `family`, ...) and
the params of the training run it evaluated (tag `oryx.train_run_id`) prefixed with `config.`, e.g.
`config.model.d_model`, so a sweep's variable is one column. What the model was comes from the training
run's tags too (`linear_kinds`, `baseline`: oryx.tracking's LINEAR_KINDS_TAG, BASELINE_TAG), never from a
list of family names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oryx.errors import OryxError
from oryx.routing import NATIVE
from oryx.tracking import BASELINE_TAG, KIND_TAG, LINEAR_KINDS_TAG, PARENT_TAG, TRAIN_RUN_TAG
from oryx.tracking.store import open_client, resolve_tracking_uri, sqlite_path

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

# `<slice>=<value>` as docs/architecture.md writes it, or `<slice>:<value>` (what MLflow accepts)
SLICE = re.compile(r"(?P<name>[^=:/]+)[=:](?P<value>.+)")
LM_EVAL, RETRIEVAL = "lm-eval", "retrieval"  # the `source` of a result row
RETRIEVAL_METRIC = "accuracy"  # what `oryx eval retrieval` logs; lm-eval metrics keep their own names
ALL = "all"  # slice name and value of a metric over every example
# Columns every results row has, in this order (config.* columns follow).
RESULT_COLUMNS: tuple[str, ...] = (
    "run_id", "parent_run_id", "run_name", "experiment", "start_time", "family", "linear_kinds", "baseline",
    "task", "schedule", "checkpoint", "train_run_id", "source", "metric", "slice", "slice_value", "value", "attention_fraction",
)


@dataclass
class Store:
    """An opened tracking store: its URI and a client checked to answer."""

    uri: str
    client: MlflowClient


def open_store(uri: str | None = None) -> Store:
    """The store at `uri`, else the one commands use (`oryx.tracking.resolve_tracking_uri`).

    A SQLite store whose file does not exist is an OryxError (reading must not create an empty store
    and then report no runs)."""
    uri = resolve_tracking_uri(uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise OryxError(f"no tracking store at {db} (run a training or evaluation first, or set "
                        f"MLFLOW_TRACKING_URI / ORYX_RUNS_DIR)")
    return Store(uri, open_client(uri))


def search(store: Store, kind: str | None = None) -> list[Run]:
    """Every run of every experiment (oldest first), only those tagged `oryx.kind=kind` if given."""
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in store.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiments:
        return []
    filter_string = f"tags.`{KIND_TAG}` = '{kind}'" if kind else ""
    found, token = [], None
    while True:
        page = store.client.search_runs(experiments, filter_string, max_results=1000, page_token=token,
                                        order_by=["attributes.start_time ASC"])
        found.extend(page)
        token = page.token
        if not token:
            return found


def runs_frame(store: Store, kind: str | None = None) -> pd.DataFrame:
    """One row per run: run_id, parent_run_id, run_name, experiment, status, start_time, kind, then each
    param under its own name (the flattened config: `model.d_model`, `schedule`, ...) and each metric's
    last value under its name (`train/loss`, `accuracy`, ...). Empty frame when there are no runs."""
    import pandas as pd

    names = _experiment_names(store)
    rows = [{**_identity(run, names), "status": run.info.status, "kind": run.data.tags.get(KIND_TAG),
             **run.data.params, **run.data.metrics} for run in search(store, kind)]
    return pd.DataFrame(rows)


def results_frame(store: Store) -> pd.DataFrame:
    """Evaluation results, tidy: one row per (eval run, task, schedule, metric, slice, slice value).

    An eval run is any run with a `task` param (docs/architecture.md: a nested run per task x schedule).
    Its metrics become rows (`parse_metric`): retrieval's `accuracy`, `exact_match`, `accuracy/<slice>:<value>`
    and lm-eval's `<task>/<metric>`, told apart by the `source` column; `attention_fraction` is a column of every row of the run. Columns: RESULT_COLUMNS,
    then `config.<param>` of the training run it evaluated (where the run or its parent names one)."""
    import pandas as pd

    runs = search(store)
    by_id = {r.info.run_id: r for r in runs}
    names = _experiment_names(store)
    rows = []
    for run in runs:
        params = run.data.params
        if "task" not in params:
            continue
        parent = by_id.get(run.data.tags.get(PARENT_TAG, ""))
        train_id = run.data.tags.get(TRAIN_RUN_TAG) or (parent.data.tags.get(TRAIN_RUN_TAG) if parent else None)
        train_run = by_id.get(train_id) if train_id else None
        config = _config_columns(train_run)
        schedule = params.get("schedule", NATIVE)
        base = {**_identity(run, names), "family": params.get("family", "unknown"), **_model_columns(train_run, schedule),
                "task": params["task"], "schedule": schedule, "checkpoint": params.get("checkpoint"),
                "train_run_id": train_id, "attention_fraction": run.data.metrics.get("attention_fraction")}
        for key, value in sorted(run.data.metrics.items()):
            parsed = parse_metric(key, params["task"])
            if parsed is not None:
                source, metric, slice_name, slice_value = parsed
                rows.append({**base, "source": source, "metric": metric, "slice": slice_name, "slice_value": slice_value,
                             "value": value, **config})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    extra = sorted(c for c in frame.columns if c not in RESULT_COLUMNS)
    return frame[list(RESULT_COLUMNS) + extra]


def parse_metric(key: str, task: str) -> tuple[str, str, str, str] | None:
    """A metric name of an eval run -> (source, metric, slice, slice value), or None for what is not a
    result. lm-eval metrics are named `<task>/<metric>` (source 'lm-eval'); retrieval metrics are not.

        'accuracy'                  -> ('retrieval', 'accuracy', 'all', 'all')
        'accuracy/num_kv_pairs=8'   -> ('retrieval', 'accuracy', 'num_kv_pairs', '8')
        'accuracy/num_kv_pairs:8'   -> the same (MLflow refuses '=' in metric names; ':' is allowed)
        'piqa/acc' (task piqa)      -> ('lm-eval', 'acc', 'all', 'all')
        'attention_fraction...'     -> None (a column, not a result)
    """
    if key.startswith("attention_fraction"):
        return None
    source = LM_EVAL if key.startswith(f"{task}/") else RETRIEVAL
    metric, _, sliced = key.removeprefix(f"{task}/").partition("/")
    if not sliced:
        return source, metric, ALL, ALL
    match = SLICE.fullmatch(sliced)
    return (source, metric, match["name"], match["value"]) if match else None


def latest(results: pd.DataFrame, keys: tuple[str, ...] = ("family", "task", "schedule", "metric", "slice",
                                                            "slice_value")) -> pd.DataFrame:
    """The newest row of each `keys` combination (a rerun replaces the numbers of an older run)."""
    if results.empty:
        return results
    return results.sort_values("start_time").drop_duplicates(list(keys), keep="last").reset_index(drop=True)


def history_frame(store: Store, run_ids: list[str], metric: str, config: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every logged value of `metric` of the runs: columns run_id, run_name, step, value, then the params
    named in `config` (e.g. ('schedule', 'model.query_tying'), the variable of an ablation)."""
    import pandas as pd

    rows = []
    for run_id in run_ids:
        run = get_run(store, run_id)
        extra = {name: run.data.params.get(name) for name in config}
        for m in store.client.get_metric_history(run_id, metric):
            rows.append({"run_id": run_id, "run_name": run.info.run_name, "step": m.step, "value": m.value,
                         **extra})
    if not rows:
        raise OryxError(f"none of the runs {', '.join(run_ids) or '(none)'} logged metric {metric!r}")
    return pd.DataFrame(rows).sort_values(["run_id", "step"]).reset_index(drop=True)


def get_run(store: Store, run_id: str) -> Run:
    """The run `run_id`; an OryxError naming it when the store has no such run."""
    from mlflow.exceptions import MlflowException

    try:
        return store.client.get_run(run_id)
    except MlflowException:
        raise OryxError(f"no run {run_id!r} in the tracking store {store.uri}") from None


def _experiment_names(store: Store) -> dict[str, str]:
    from mlflow.entities import ViewType

    return {e.experiment_id: e.name for e in store.client.search_experiments(view_type=ViewType.ALL)}


def _identity(run: Run, experiments: dict[str, str]) -> dict:
    import pandas as pd

    return {"run_id": run.info.run_id, "parent_run_id": run.data.tags.get(PARENT_TAG),
            "run_name": run.info.run_name, "experiment": experiments.get(run.info.experiment_id),
            "start_time": pd.Timestamp(run.info.start_time, unit="ms")}


def _config_columns(train_run: Run | None) -> dict[str, str]:
    """The training run's params as `config.<name>` columns (none when the run is not known)."""
    return {} if train_run is None else {f"config.{k}": v for k, v in train_run.data.params.items()}


def _model_columns(train_run: Run | None, schedule: str) -> dict:
    """`linear_kinds` and `baseline` of the evaluated model, from its training run's tags. Where that
    run is not known or predates the tags, `baseline` is what the eval run itself shows: a model that ran
    the `native` schedule is a single-mixer one (an Oryx model logs the schedule it ran, evals.schedule)."""
    tags = train_run.data.tags if train_run is not None else {}
    baseline = tags.get(BASELINE_TAG)
    return {"linear_kinds": tags.get(LINEAR_KINDS_TAG),
            "baseline": baseline == "true" if baseline is not None else schedule == NATIVE}


def varying(frame: pd.DataFrame, prefix: str = "") -> list[str]:
    """Columns (starting with `prefix`, e.g. 'config.') whose value differs between rows: the variables
    of a sweep. Identity, time and metric columns are never variables."""
    fixed = {"run_id", "parent_run_id", "run_name", "start_time", "status", "experiment", "value",
             "attention_fraction", "train_run_id", "checkpoint"}
    return [c for c in frame.columns if c.startswith(prefix) and c not in fixed and "/" not in c
            and frame[c].astype(str).nunique() > 1]


def retrieval_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The overall retrieval accuracy rows (metric 'accuracy', slice 'all'): one per eval run."""
    return results[(results["source"] == RETRIEVAL) & (results["metric"] == RETRIEVAL_METRIC) & (results["slice"] == ALL)]


def pick_mixed_run(results: pd.DataFrame) -> str:
    """The newest retrieval run whose measured attention fraction is strictly between 0 and 1 (a schedule
    that mixes the modes: the interesting one to look at), else the newest retrieval run."""
    rows = retrieval_rows(results)
    if rows.empty:
        raise OryxError("no retrieval runs in these results (run `oryx eval retrieval` first)")
    mixed = rows[(rows["attention_fraction"] > 0) & (rows["attention_fraction"] < 1)]
    return (mixed if len(mixed) else rows).sort_values("start_time")["run_id"].iloc[-1]
