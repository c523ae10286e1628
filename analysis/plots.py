"""Figures (seaborn/matplotlib), each from a frame of analysis.runs or analysis.modes; each returns the
matplotlib Figure, and `save_figure` writes it as a PNG.

    accuracy_vs_attention(results)     the retrieval claim: accuracy against measured attention fraction,
                                       one line per model and schedule kind, the query-aligned oracle
                                       marked as one, baselines (the `baseline` column, from the training
                                       runs' tags) as horizontal reference lines
    routing_heatmap(grid)              layer x position of one example, coloured by mode, tokens shown
    attention_by_role_bars(table)      attention fraction by token role (key, value, query; needle...)
    training_curves(history, hue)      a metric against step, one line per run of an ablation
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.runs import latest, retrieval_rows
from oryx.errors import OryxError
from oryx.fileio import write_atomic

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from analysis.modes import RoutingGrid

# Line styles of the baselines' reference lines, given in the order of their model names.
BASELINE_STYLES: tuple = ("--", ":", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (1, 3)))
MODE_COLOURS = ("#9ecae1", "#e6550d")  # linear, attention
MAX_TOKEN_LABELS = 96  # beyond this many positions, tick labels would overlap: label every n-th


def accuracy_vs_attention(results: pd.DataFrame, task: str | None = None,
                          baselines: Sequence[str] | None = None) -> Figure:
    """One panel per retrieval task and setting (or just `task`): accuracy (y) against the measured
    attention fraction (x) of each model's schedule sweep, one line per model and schedule kind
    (`last`, `chunks`, `random`, ... each drawn from all_linear to all_attention through its points);
    the query-aligned ORACLE (`oracle:query`, it reads the task's labels) as stars on its own line and
    labelled as an oracle, a learned router's `learned:` points as a kind of their own; the baseline
    models (`baselines`, else those whose rows have `baseline` True: single-mixer models, as their
    training runs say) as horizontal lines at their accuracy."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = retrieval_rows(latest(results))
    if task is not None:
        rows = rows[rows["task"] == task]
    if rows.empty:
        raise OryxError(f"no retrieval accuracy{f' for task {task!r}' if task else ''} in these results")
    if baselines is None:
        baselines = sorted(rows.loc[rows["baseline"].astype(bool), "model"].unique())
    styles = {model: BASELINE_STYLES[i % len(BASELINE_STYLES)] for i, model in enumerate(sorted(baselines))}
    panels = sorted(rows.groupby(["task", "setting"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (name, setting) in zip(axes[0], panels):
        part = rows[(rows["task"] == name) & (rows["setting"] == setting)]
        swept = _by_kind(part[~part["model"].isin(baselines)])
        if not swept.empty:
            sns.lineplot(swept, x="attention_fraction", y="value", hue="model", style="kind", markers=KIND_MARKERS,
                         dashes=False, ax=ax, estimator=None, sort=True, markersize=7)
        for model in baselines:
            base = part[part["model"] == model]
            if not base.empty:
                ax.axhline(base["value"].mean(), color="grey", linestyle=styles[model],
                           label=f"{model} (fraction {base['attention_fraction'].mean():.2f})")
        ax.set(title=f"{name} {setting}".strip(), xlabel="measured attention fraction", ylabel="accuracy",
               ylim=(-0.02, 1.02), xlim=(-0.02, 1.02))
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


ORACLE_KIND = "oracle (reads the labels)"
KIND_MARKERS = {"last": "o", "chunks": "s", "random": "D", "spans": "v", "tokens": "^", "learned": "P",
                ORACLE_KIND: "*"}


def _by_kind(rows: pd.DataFrame) -> pd.DataFrame:
    """Sweep rows with a `kind` column (the schedule's name; oracles under ORACLE_KIND), the all_linear
    and all_attention points of a model repeated in each of its kinds so every line spans 0 to 1."""
    import pandas as pd

    names = rows["schedule"].str.split(":").str[0]
    kinds = names.where(names != "oracle", ORACLE_KIND)
    rows = rows.assign(kind=kinds)
    ends = rows[rows["kind"].isin(["all_linear", "all_attention"])]
    middle = rows[~rows.index.isin(ends.index)]
    if middle.empty:
        return rows.assign(kind="uniform")
    pieces = [middle]
    for (model, kind) in middle.groupby(["model", "kind"]).groups:
        pieces.append(ends[ends["model"] == model].assign(kind=kind))
    return pd.concat(pieces).sort_values("attention_fraction").reset_index(drop=True)


def routing_heatmap(grid: RoutingGrid, decode: Callable[[int], str] | None = None,
                    title: str = "") -> Figure:
    """Layer (rows) x position (columns), coloured by mode; tokens under the columns (`decode` turns an
    id into text, else the id is shown); above, a mark per position with a target: right (green
    circle) or wrong (red cross)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    L, T = grid.modes.shape
    fig, ax = plt.subplots(figsize=(min(2 + 0.22 * T, 40), 1.6 + 0.45 * L))
    ax.imshow(grid.modes.astype(int), aspect="auto", cmap=ListedColormap(MODE_COLOURS), vmin=0, vmax=1,
              interpolation="nearest")
    step = max(1, -(-T // MAX_TOKEN_LABELS))
    shown = range(0, T, step)
    labels = [decode(int(grid.tokens[t])) if decode else str(int(grid.tokens[t])) for t in shown]
    ax.set_xticks(list(shown), [repr(s)[1:-1] if decode else s for s in labels], rotation=90, fontsize=7)
    ax.set_yticks(range(L), [f"layer {i}" for i in range(L)])
    right, wrong = np.flatnonzero(grid.correct == 1.0), np.flatnonzero(grid.correct == 0.0)
    ax.scatter(right, np.full(len(right), -0.75), marker="o", color="green", s=18, clip_on=False)
    ax.scatter(wrong, np.full(len(wrong), -0.75), marker="x", color="red", s=18, clip_on=False)
    ax.set_ylim(L - 0.5, -1.1)
    ax.legend(handles=[Patch(color=MODE_COLOURS[1], label="attention"), Patch(color=MODE_COLOURS[0], label="linear")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title(title or f"modes of {T} positions (o right, x wrong prediction of the next token)")
    fig.tight_layout()
    return fig


def attention_by_role_bars(table: pd.DataFrame, hue: str | None = None) -> Figure:
    """Bars of attention fraction per role from `analysis.modes.attention_by_role` (one group of bars per
    role, `hue` a further column such as 'run_id' or 'schedule')."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.2 * table["role"].nunique() + 3, 3.5))
    sns.barplot(table, x="role", y="attention_fraction", hue=hue, ax=ax)
    ax.set(ylabel="attention fraction", xlabel="token role", ylim=(0, 1.02))
    if hue is not None:  # beside the axes: inside, the legend would hide bars that reach 1
        ax.legend(title=hue, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, hue: str = "run_name", metric: str = "", style: str | None = None) -> Figure:
    """`value` against `step` from `analysis.runs.history_frame`, one line per run, coloured by `hue` (the
    ablation's variable, e.g. a config param) and dashed by `style` (e.g. the seed), when given."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    for column in (hue, style):
        if column is not None and column not in history.columns:
            raise OryxError(f"no column {column!r} in the history frame (columns: {', '.join(history.columns)})")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(history, x="step", y="value", hue=hue, style=style, units="run_id", estimator=None, ax=ax)
    ax.set(xlabel="step", ylabel=metric or "value")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG at `path` (atomically) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return path
