"""Figures (seaborn/matplotlib), each from a frame of analysis.runs or analysis.modes; each returns the
matplotlib Figure, and `save_figure` writes it as a PNG.

    accuracy_vs_attention(results)     the retrieval claim: accuracy against measured attention fraction,
                                       one line per Oryx family, baselines (the `baseline` column, from
                                       the training runs' tags) as horizontal reference lines
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

# Line styles of the baselines' reference lines, given in the order of their family names.
BASELINE_STYLES: tuple = ("--", ":", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (1, 3)))
MODE_COLOURS = ("#9ecae1", "#e6550d")  # linear, attention
MAX_TOKEN_LABELS = 96  # beyond this many positions, tick labels would overlap: label every n-th


def accuracy_vs_attention(results: pd.DataFrame, task: str | None = None,
                          baselines: Sequence[str] | None = None) -> Figure:
    """One panel per retrieval task (or just `task`): accuracy (y) against the measured attention
    fraction (x) of each family's schedule sweep (a learned router's `learned:` points as a line of their
    own, '<family> learned'); the baseline families (`baselines`, else those whose rows have `baseline`
    True: single-mixer models, as their training runs say) as horizontal lines at their accuracy,
    labelled."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = retrieval_rows(latest(results))
    if task is not None:
        rows = rows[rows["task"] == task]
    if rows.empty:
        raise OryxError(f"no retrieval accuracy{f' for task {task!r}' if task else ''} in these results")
    if baselines is None:
        baselines = sorted(rows.loc[rows["baseline"].astype(bool), "family"].unique())
    styles = {family: BASELINE_STYLES[i % len(BASELINE_STYLES)] for i, family in enumerate(sorted(baselines))}
    tasks = sorted(rows["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, name in zip(axes[0], tasks):
        part = rows[rows["task"] == name]
        swept = part[~part["family"].isin(baselines)].sort_values("attention_fraction")
        learned = swept["schedule"].astype(str).str.startswith("learned:")
        swept = swept.assign(family=swept["family"].where(~learned, swept["family"] + " learned"))
        if not swept.empty:
            sns.lineplot(swept, x="attention_fraction", y="value", hue="family", marker="o", ax=ax,
                         estimator=None, sort=True)
        for family in baselines:
            base = part[part["family"] == family]
            if not base.empty:
                ax.axhline(base["value"].mean(), color="grey", linestyle=styles[family],
                           label=f"{family} (fraction {base['attention_fraction'].mean():.2f})")
        ax.set(title=name, xlabel="measured attention fraction", ylabel="accuracy", ylim=(-0.02, 1.02))
        ax.set_xlim(-0.02, 1.02)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


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


def training_curves(history: pd.DataFrame, hue: str = "run_name", metric: str = "") -> Figure:
    """`value` against `step` from `analysis.runs.history_frame`, one line per value of `hue` (the
    ablation's variable, e.g. a config param)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if hue not in history.columns:
        raise OryxError(f"no column {hue!r} in the history frame (columns: {', '.join(history.columns)})")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(history, x="step", y="value", hue=hue, units="run_id", estimator=None, ax=ax)
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
