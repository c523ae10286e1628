"""The paper-format tables from a results frame (analysis.runs.results_frame), as Markdown and CSV.

    lm_table(results)          rows: family (and schedule); columns: one per task and metric, then `avg`
    retrieval_table(results)   rows: model, schedule; columns: accuracy per task (setting) and attention fraction
    retrieval_results(results) long: model, schedule, attention fraction, task, slice, accuracy, seed, run
    lm_study_table(frame)      rows: model, schedule; columns: mean and spread over seeds of the LM study's
                               metrics (frame: analysis.lm.lm_frame); format_spread() for the paper's "m ± s"
    write_table(table, out_dir, "lm")   -> out_dir/lm.md and out_dir/lm.csv (atomic writes)

Rows of a rerun replace the older ones (`analysis.runs.latest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysis.runs import ALL, LM_EVAL, latest, retrieval_rows
from oryx.errors import OryxError
from oryx.fileio import write_atomic

if TYPE_CHECKING:
    import pandas as pd

# The metric of each task in the LM tables of the Mamba-2 / GLA / Gated DeltaNet papers (PAPER.md).
PAPER_METRICS: dict[str, tuple[str, ...]] = {
    "wikitext": ("word_perplexity",),
    "lambada_openai": ("perplexity", "acc"),
    "piqa": ("acc",),
    "hellaswag": ("acc_norm",),
    "winogrande": ("acc",),
    "arc_easy": ("acc",),
    "arc_challenge": ("acc_norm",),
}
AVERAGE = "avg"


def is_accuracy(metric: str) -> bool:
    """Metrics that go into the average (accuracies, higher is better); perplexities stay out, as in
    the papers' tables."""
    return metric.startswith("acc")


def lm_table(results: pd.DataFrame, metrics: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Rows family x schedule, columns `<task> <metric>` (tasks in PAPER_METRICS order first), then `avg`:
    the mean of the accuracy columns of each row. `metrics` picks each task's metrics (default:
    PAPER_METRICS for the paper's tasks, every logged metric for others). Only overall (slice 'all')
    numbers of lm-eval metrics; stderr metrics are left out."""
    chosen = {**PAPER_METRICS, **(metrics or {})}
    rows = latest(results)
    rows = rows[(rows["source"] == LM_EVAL) & (rows["slice"] == ALL) & ~rows["metric"].str.contains("stderr")]
    rows = rows[[task not in chosen or metric in chosen[task] for task, metric in zip(rows["task"], rows["metric"])]]
    if rows.empty:
        raise OryxError("no language-modelling results in the store (run `oryx eval lm` first)")
    order = {task: i for i, task in enumerate(PAPER_METRICS)}
    rows = rows.assign(column=rows["task"] + " " + rows["metric"])
    table = rows.pivot_table(index=["family", "schedule"], columns="column", values="value", aggfunc="last")
    columns = sorted(table.columns, key=lambda c: (order.get(c.split(" ")[0], len(order)), c))
    table = table[columns]
    accuracy = [c for c in columns if is_accuracy(c.split(" ", 1)[1])]
    table[AVERAGE] = table[accuracy].mean(axis=1) if accuracy else float("nan")
    return table.reset_index().rename_axis(columns=None)


# The columns of the language-modelling study's table (issue 16): (task, metric) of analysis.lm.lm_frame.
LM_STUDY_METRICS: tuple[tuple[str, str], ...] = (
    ("validation", "loss"), ("validation", "bits_per_byte"), ("oryx_heldout", "bits_per_byte"),
    ("oryx_heldout", "word_perplexity"), ("oryx_cloze", "acc"), ("oryx_cloze", "acc_norm"),
    ("oryx_passkey", "exact_match"),
)
SPREAD = " sd"  # suffix of a column's spread over seeds


def lm_study_table(frame: pd.DataFrame, metrics: tuple[tuple[str, str], ...] = LM_STUDY_METRICS) -> pd.DataFrame:
    """Rows model x schedule; columns `seeds`, `params`, `tokens`, then for each (task, metric) that the
    frame has: `<task> <metric>` (mean over seeds) and `<task> <metric> sd` (sample standard deviation
    over seeds, NaN with one seed). frame: analysis.lm.lm_frame (columns model, schedule, task, metric,
    value, seed, tokens, params)."""
    import pandas as pd

    wanted = frame[[(t, m) in set(metrics) for t, m in zip(frame["task"], frame["metric"])]]
    if wanted.empty:
        raise OryxError(f"none of the metrics {', '.join(f'{t} {m}' for t, m in metrics)} are in the results")
    keys = ["model", "schedule"]
    base = wanted.groupby(keys).agg(seeds=("seed", "nunique"), params=("params", "max"), tokens=("tokens", "max"))
    columns = []
    for task, metric in metrics:
        rows = wanted[(wanted["task"] == task) & (wanted["metric"] == metric)]
        if rows.empty:
            continue
        per_seed = rows.groupby([*keys, "seed"])["value"].last()  # one number per seed (a rerun replaces)
        grouped = per_seed.groupby(level=keys)
        columns += [grouped.mean().rename(f"{task} {metric}"), grouped.std(ddof=1).rename(f"{task} {metric}{SPREAD}")]
    return pd.concat([base, *columns], axis=1).reset_index()


def format_spread(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The paper's format of lm_study_table: each metric as "mean ± sd" (just the mean with one seed)."""
    out = table[[c for c in table.columns if not c.endswith(SPREAD)]].copy()
    for column in out.columns:
        if f"{column}{SPREAD}" not in table.columns:
            continue
        mean, sd = table[column], table[f"{column}{SPREAD}"]
        out[column] = [("" if m != m else f"{m:.{digits}f}" + ("" if s != s else f" ± {s:.{digits}f}"))
                       for m, s in zip(mean, sd)]
    return out


def retrieval_table(results: pd.DataFrame) -> pd.DataFrame:
    """Rows model x schedule (the family beside; sorted by attention fraction), columns `<task> accuracy`
    and `<task> attention_fraction` for each retrieval task (overall numbers, slice 'all'); a task measured
    in several settings gets a pair of columns per setting (`mqar num_kv_pairs=64 accuracy`). An oracle
    schedule (`oracle:query`) keeps its name, which says what it is."""
    rows = retrieval_rows(latest(results))
    if rows.empty:
        raise OryxError("no retrieval results in the store (run `oryx eval retrieval` first)")
    several = rows.groupby("task")["setting"].transform("nunique") > 1
    rows = rows.assign(column=rows["task"].where(~several, rows["task"] + " " + rows["setting"]))
    index = ["model", "family", "schedule"]
    accuracy = rows.pivot_table(index=index, columns="column", values="value", aggfunc="last")
    fraction = rows.pivot_table(index=index, columns="column", values="attention_fraction", aggfunc="last")
    parts = []
    for column in accuracy.columns:
        parts.append(accuracy[column].rename(f"{column} accuracy"))
        parts.append(fraction[column].rename(f"{column} attention_fraction"))
    import pandas as pd

    table = pd.concat(parts, axis=1)
    first_fraction = table[[c for c in table.columns if c.endswith("attention_fraction")]].mean(axis=1)
    table = table.assign(_order=first_fraction).reset_index().sort_values(["model", "_order", "schedule"])
    return table.drop(columns="_order").reset_index(drop=True)


#: Columns of `retrieval_results` (analysis/results/retrieval.csv), in this order.
RETRIEVAL_RESULT_COLUMNS = ("model", "schedule", "attention_fraction", "task", "slice", "accuracy", "seed",
                            "mlflow_run", "family", "setting", "oracle")


def retrieval_results(results: pd.DataFrame) -> pd.DataFrame:
    """Every retrieval accuracy, long: one row per model x schedule x task setting x slice, with the
    measured attention fraction of its run, the training seed and the MLflow run that logged it.
    `slice` is 'all' or '<name>=<value>' (`num_kv_pairs=32`, `query_distance=4-7`, `depth=0.5`);
    `oracle` is True for schedules that read the task's labels (`oracle:`)."""
    rows = latest(results)
    rows = rows[(rows["source"] == "retrieval") & (rows["metric"] == "accuracy")]
    if rows.empty:
        raise OryxError("no retrieval results in the store (run `oryx eval retrieval` first)")
    seed = rows.get("config.train.seed")
    out = rows.assign(
        slice=rows["slice"].where(rows["slice"] == ALL, rows["slice"] + "=" + rows["slice_value"]),
        accuracy=rows["value"], seed=seed, mlflow_run=rows["run_id"],
        oracle=rows["schedule"].map(is_oracle),
    )
    return out[list(RETRIEVAL_RESULT_COLUMNS)].sort_values(["model", "task", "setting", "attention_fraction",
                                                            "schedule", "slice"]).reset_index(drop=True)


def is_oracle(schedule: str) -> bool:
    """Whether a schedule reads the task's labels (`oracle:query`): shown labelled as an upper bound."""
    return str(schedule).startswith("oracle:")


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table, numbers rounded to `digits` places."""
    return table.to_markdown(index=False, floatfmt=f".{digits}f") + "\n"


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """out_dir/<name>.md and out_dir/<name>.csv, each written atomically; returns both paths."""
    out_dir = Path(out_dir)
    md, csv = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    write_atomic(md, lambda p: p.write_text(to_markdown(table)))
    write_atomic(csv, lambda p: table.to_csv(p, index=False))
    return md, csv
