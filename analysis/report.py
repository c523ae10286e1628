"""A reproduction's report: the paper-format tables and the figures, from the runs it made.

    report = write_report(store, out_dir, train_run_ids=[...])
    report.tables["lm"], report.files     # DataFrames; the Markdown, CSV and PNG files written

Writes, where the runs have the data for them:
    tables/lm.{md,csv}             rows families, columns tasks with their metric, then the average
    tables/retrieval.{md,csv}      accuracy and measured attention fraction per model and schedule
    tables/retrieval_results.csv   every retrieval accuracy, per slice, with its seed and MLflow run
    figures/accuracy_vs_attention.png, figures/routing.png (one example of a run that mixes modes),
    figures/attention_by_role.png, figures/training_curves.png
and, for models trained on a text corpus (`write_lm_results`, also on its own for several stores):
    results/lm.csv                 the long table of analysis.lm.lm_frame (model, schedule, task, metric,
                                   value, seed, tokens, params, mlflow_run)
    tables/lm_study.{md,csv}       mean ± sd over seeds per model and schedule (analysis.tables.lm_study_table)
    figures/lm_curves.png          training loss of every model and seed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.lm import lm_curves, lm_frame
from analysis.modes import attention_by_role, load_mode_log, routing_grid
from analysis.plots import (
    accuracy_vs_attention,
    attention_by_role_bars,
    routing_heatmap,
    save_figure,
    training_curves,
)
from analysis.runs import (
    LM_EVAL,
    Store,
    history_frame,
    pick_mixed_run,
    results_frame,
    retrieval_rows,
)
from analysis.tables import (
    format_spread,
    lm_study_table,
    lm_table,
    retrieval_results,
    retrieval_table,
    to_markdown,
    write_table,
)
from oryx.errors import OryxError
from oryx.fileio import write_atomic
from oryx.tracking import TRAIN_LOSS

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Report:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def write_report(store: Store, out_dir: str | Path, train_run_ids: list[str]) -> Report:
    """Tables and figures of the training runs `train_run_ids` and of every evaluation of the models they
    trained (eval runs tagged oryx.train_run_id; a rerun's numbers replace older ones), into
    out_dir/tables and out_dir/figures."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, also on a machine with a display
    out_dir = Path(out_dir)
    report = Report()
    results = results_frame(store)
    results = results[results["train_run_id"].isin(set(train_run_ids))]
    if (results["source"] == LM_EVAL).any():
        _table(report, lm_table(results), out_dir, "lm")
    if not retrieval_rows(results).empty:
        _table(report, retrieval_table(results), out_dir, "retrieval")
        long = retrieval_results(results)
        path = out_dir / "tables" / "retrieval_results.csv"
        write_atomic(path, lambda p: long.to_csv(p, index=False))
        report.files.append(path)
        _figure(report, accuracy_vs_attention(results), out_dir, "accuracy_vs_attention")
        _mode_figures(report, store, results, out_dir)
    if train_run_ids:
        history = history_frame(store, train_run_ids, TRAIN_LOSS)
        _figure(report, training_curves(history, hue="run_name", metric=TRAIN_LOSS), out_dir, "training_curves")
        _lm_results(report, [store], out_dir, None, train_run_ids)
    return report


def write_lm_results(stores: list[Store], out_dir: str | Path, experiment: str | None = None,
                     train_run_ids: list[str] | None = None) -> Report:
    """results/lm.csv, tables/lm_study.{md,csv} and figures/lm_curves.png under out_dir, from the corpus
    trainings (of `experiment`, among `train_run_ids`, when given) in `stores` and their lm-eval runs.
    Several stores: runs made on different machines, read together. OryxError when there are none."""
    import matplotlib

    matplotlib.use("Agg")
    report = Report()
    if not _lm_results(report, stores, Path(out_dir), experiment, train_run_ids):
        raise OryxError("no model trained on a text corpus in the store(s)"
                        + (f" under experiment {experiment!r}" if experiment else ""))
    return report


def _lm_results(report: Report, stores: list[Store], out_dir: Path, experiment: str | None,
                train_run_ids: list[str] | None) -> bool:
    """What write_lm_results writes, into `report`; False (nothing written) without corpus trainings."""
    try:
        frame = lm_frame(stores, experiment, train_run_ids)
    except OryxError:
        return False
    path = out_dir / "results" / "lm.csv"
    write_atomic(path, lambda p: frame.to_csv(p, index=False))
    report.tables["lm_results"] = frame
    report.files.append(path)
    table = lm_study_table(frame)
    report.tables["lm_study"] = format_spread(table)
    md, csv = out_dir / "tables" / "lm_study.md", out_dir / "tables" / "lm_study.csv"
    write_atomic(csv, lambda p: table.to_csv(p, index=False))          # the numbers, mean and sd apart
    write_atomic(md, lambda p: p.write_text(to_markdown(report.tables["lm_study"])))   # "mean ± sd"
    report.files += [md, csv]
    curves = lm_curves(stores, frame)
    _figure(report, training_curves(curves, hue="model", metric=TRAIN_LOSS, style="seed"), out_dir, "lm_curves")
    return True


def _mode_figures(report: Report, store: Store, results: pd.DataFrame, out_dir: Path) -> None:
    """The routing of one example of a mixed-mode run, and attention by role over every retrieval run
    that logged its modes (none logged: no mode figures)."""
    import pandas as pd

    logs = {}
    for run_id in retrieval_rows(results)["run_id"]:
        try:
            logs[run_id] = load_mode_log(store, run_id)
        except OryxError:  # evaluated with log_modes 0
            continue
    if not logs:
        return
    rows = retrieval_rows(results)
    rows = rows[rows["run_id"].isin(logs)]
    run_id = pick_mixed_run(rows)
    run = rows[rows["run_id"] == run_id].iloc[0]
    grid = routing_grid(logs[run_id], example=0, task=run["task"])
    title = f"{run['model']} on {run['task']}, schedule {run['schedule']}: example 0"
    _figure(report, routing_heatmap(grid, title=title), out_dir, "routing")
    frames = [logs[r.run_id].assign(model=f"{r.model} {r.schedule}") for r in rows.itertuples()]
    table = attention_by_role(pd.concat(frames, ignore_index=True), by=("model",))
    _figure(report, attention_by_role_bars(table, hue="model"), out_dir, "attention_by_role")


def _table(report: Report, table: pd.DataFrame, out_dir: Path, name: str) -> None:
    report.tables[name] = table
    report.files.extend(write_table(table, out_dir / "tables", name))


def _figure(report: Report, fig, out_dir: Path, name: str) -> None:
    report.files.append(save_figure(fig, out_dir / "figures" / f"{name}.png"))
