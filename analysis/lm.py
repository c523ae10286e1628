"""The language-modelling study's results as one long table: `lm.csv` (analysis/results/ once committed).

    frame = lm_frame([open_store()], experiment="reproduce-gpu-lm")
    frame.columns == LM_COLUMNS   # model, schedule, task, metric, value, seed, tokens, params, mlflow_run

One row per number, from two kinds of runs of the experiment:
- training runs: task `validation` (the trainer's last `val/loss/<mode>`, nats per token over the
  validation windows, and `bits_per_byte` = loss x tokens / bytes / ln 2 where the corpus manifest at the
  run's `data.path` records its val split's bytes, i.e. validation covered the whole split), and task
  `train` (the last `train/loss` and `train/tokens_per_s`);
- lm-eval runs of those models (`oryx eval lm`): every overall metric of every task, stderr left out.

`model` is the training run's name less a `-seed<N>` suffix (the preset's model name, the same for every
seed), `seed` its `train.seed`, `tokens` the tokens it trained on (max_steps x batch_size x seq_len),
`params` its parameter count, `mlflow_run` the run the number was read from. A single-mixer model's
numbers carry schedule `native`; an Oryx model's the schedule it ran (its training schedule by name).
Reads MLflow stores and the corpus manifest (JSON) only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.runs import ALL, LM_EVAL, Store, latest, results_frame, runs_frame
from oryx.data.corpus import MANIFEST_FILE
from oryx.errors import OryxError
from oryx.fileio import read_json_object
from oryx.tracking import TRAIN_LOSS

if TYPE_CHECKING:
    import pandas as pd

LM_COLUMNS: tuple[str, ...] = ("model", "schedule", "task", "metric", "value", "seed", "tokens", "params", "mlflow_run")
VALIDATION, TRAIN = "validation", "train"  # the `task` of the trainer's own numbers
VAL_LOSS = re.compile(r"val/loss/(?P<mode>.+)")
TOKENS_PER_S = "train/tokens_per_s"
NATIVE = "native"  # oryx.routing.NATIVE, not imported from there: oryx.routing loads the model


def lm_frame(stores: list[Store], experiment: str | None = None, train_run_ids: list[str] | None = None) -> pd.DataFrame:
    """The long results table (LM_COLUMNS) of the training runs in `stores` that trained on a corpus (of
    `experiment`, and among `train_run_ids`, when given), and of their lm-eval runs. Sorted by model,
    seed, task, metric, schedule."""
    import pandas as pd

    rows = []
    for store in stores:
        trains = runs_frame(store, kind="train")
        if trains.empty:
            continue
        if experiment is not None:
            trains = trains[trains["experiment"] == experiment]
        if train_run_ids is not None:
            trains = trains[trains["run_id"].isin(set(train_run_ids))]
        if "data.kind" in trains.columns:
            trains = trains[trains["data.kind"] == "corpus"]
        identity = {r["run_id"]: _identity(r) for r in trains.to_dict("records")}
        for run in trains.to_dict("records"):
            rows += _training_rows(run, identity[run["run_id"]])
        rows += _eval_rows(store, identity)
    if not rows:
        raise OryxError("no language-modelling runs in the store(s)" + (f" of experiment {experiment!r}" if experiment else ""))
    frame = pd.DataFrame(rows, columns=list(LM_COLUMNS))
    return frame.sort_values(["model", "seed", "task", "metric", "schedule"]).reset_index(drop=True)


def lm_curves(stores: list[Store], frame: pd.DataFrame, metric: str = TRAIN_LOSS) -> pd.DataFrame:
    """`metric` at every logged step of the training runs of `frame` (an lm_frame): the columns of
    analysis.runs.history_frame plus `model` and `seed`."""
    import pandas as pd

    from analysis.runs import history_frame

    runs = frame[frame["task"].isin([VALIDATION, TRAIN])].drop_duplicates("mlflow_run")
    ids = set(runs["mlflow_run"])
    parts = []
    for store in stores:
        mine = [i for i in runs_frame(store, kind="train")["run_id"] if i in ids] if ids else []
        if mine:
            parts.append(history_frame(store, mine, metric))
    if not parts:
        raise OryxError(f"no training run of these results logged {metric!r}")
    history = pd.concat(parts, ignore_index=True)
    labels = runs.set_index("mlflow_run")[["model", "seed"]]
    return history.join(labels, on="run_id")


def _identity(run: dict) -> dict:
    """model, seed, tokens, params of a training run (a runs_frame row)."""
    seed = int(run.get("train.seed") or 0)
    name = re.sub(rf"-seed{seed}$", "", str(run.get("run_name") or run["run_id"]))
    tokens = int(run["train.max_steps"]) * int(run["train.batch_size"]) * int(run["data.seq_len"])
    return {"model": name, "seed": seed, "tokens": tokens, "params": int(run["params.total"])}


def _training_rows(run: dict, identity: dict) -> list[dict]:
    # the frame has a column for every mode any run validated: this run's are those it has a value in
    modes = {m["mode"]: run[key] for key in run if isinstance(key, str) and (m := VAL_LOSS.fullmatch(key))
             and _logged(run[key])}
    single = len(modes) == 1  # a single-mixer model validates its own mode only
    per_byte = _val_tokens_per_byte(run.get("data.path"))
    rows = []
    for mode, loss in sorted(modes.items()):
        schedule = NATIVE if single else (run.get("schedule") if mode == "schedule" else mode)
        rows.append({**identity, "schedule": schedule, "task": VALIDATION, "metric": "loss", "value": loss,
                     "mlflow_run": run["run_id"]})
        if per_byte is not None:
            rows.append({**identity, "schedule": schedule, "task": VALIDATION, "metric": "bits_per_byte",
                         "value": loss * per_byte / math.log(2), "mlflow_run": run["run_id"]})
    schedule = run.get("schedule") or NATIVE
    for metric, key in (("loss", TRAIN_LOSS), ("tokens_per_s", TOKENS_PER_S)):
        value = run.get(key)
        if _logged(value):
            rows.append({**identity, "schedule": schedule, "task": TRAIN, "metric": metric, "value": value,
                         "mlflow_run": run["run_id"]})
    return rows


def _logged(value) -> bool:
    """Whether a runs_frame cell holds a number (NaN: the run did not log that metric)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _val_tokens_per_byte(path: str | None) -> float | None:
    """Tokens per UTF-8 byte of a corpus's val split, from its manifest.json (None when it cannot be
    read or does not record bytes: a corpus prepared before bytes were counted)."""
    if not path:
        return None
    try:
        split = read_json_object(Path(path) / MANIFEST_FILE)["splits"]["val"]
    except (OryxError, KeyError, TypeError):  # not here (another machine's path), or an older manifest
        return None
    return split["tokens"] / split["bytes"] if split.get("bytes") else None


def _eval_rows(store: Store, identity: dict[str, dict]) -> list[dict]:
    results = latest(results_frame(store), ("train_run_id", "task", "schedule", "metric", "slice", "slice_value"))
    results = results[(results["source"] == LM_EVAL) & (results["slice"] == ALL)
                      & results["train_run_id"].isin(set(identity)) & ~results["metric"].str.contains("stderr")]
    return [{**identity[r["train_run_id"]], "schedule": r["schedule"], "task": r["task"], "metric": r["metric"],
             "value": r["value"], "mlflow_run": r["run_id"]} for r in results.to_dict("records")]
