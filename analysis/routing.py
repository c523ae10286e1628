"""Where a learned router spends attention: summaries of the per-token mode log of a `learned:` run.

Reads only the logged columns (analysis.modes): mode, router_score, role, layer, position.

    log = load_mode_log(store, run_id)
    router_spending(log, by=("layer", "role"))      # per layer and token role
    router_spending(log, by=("layer", "position"), bins=8)   # positions in 8 equal ranges
    router_spending_figure(log)                      # both, as bars and lines per layer

Columns of `router_spending`: the `by` columns, positions (logged rows in the group), attention (those
in attention mode), attention_fraction (attention / positions), share (the group's part of all the
attention of its layer, or of the whole log without a `layer` column in `by`: where the budget goes), and
mean_score (the router's mean score there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oryx.errors import OryxError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

SPENDING_COLUMNS = ("positions", "attention", "attention_fraction", "share", "mean_score")


def has_router_scores(log: pd.DataFrame) -> bool:
    """Whether a mode log comes from a learned router (its router_score column holds values)."""
    return "router_score" in log.columns and bool(log["router_score"].notna().any())


def router_spending(log: pd.DataFrame, by: str | tuple[str, ...] = ("layer", "role"), bins: int | None = None) -> pd.DataFrame:
    """Attention and router scores of a learned router's mode log, grouped by `by` (columns of the log:
    layer, role, position, task, run_id...); with `bins`, positions are bucketed into that many equal
    ranges (a 'position' key then holds labels such as '0-7'). Only the layers the router routes count
    (rows with a score). A log without router scores, or a `role` grouping of a log without roles, is an
    OryxError."""
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    if not has_router_scores(log):
        raise OryxError("this mode log has no router scores: evaluate a learned:TARGET schedule on a model "
                        "with a learned router")
    if missing := [k for k in keys if k not in log.columns]:
        raise OryxError(f"the mode log has no column {missing[0]!r} to group by (columns: {', '.join(log.columns)})")
    rows = log[log["router_score"].notna()].copy()
    if "role" in keys:
        if rows["role"].isna().all():
            raise OryxError("this mode log has no token roles (only synthetic tasks such as mqar and niah log them)")
        rows = rows[rows["role"].notna()]
    if bins is not None and "position" in keys:
        if bins < 1:
            raise OryxError(f"bins must be at least 1, got {bins}")
        width = -(-(int(rows["position"].max()) + 1) // bins)   # ceil: every position in a bin
        lo = rows["position"] // width * width
        rows["position"] = pd.Categorical(lo.astype(str) + "-" + (lo + width - 1).astype(str),
                                          categories=[f"{a}-{a + width - 1}" for a in range(0, width * bins, width)],
                                          ordered=True)
    rows["attention"] = rows["mode"].astype(int)
    out = (rows.groupby(keys, observed=True)
           .agg(positions=("mode", "size"), attention=("attention", "sum"), mean_score=("router_score", "mean"))
           .reset_index())
    out["attention_fraction"] = out["attention"] / out["positions"]
    spent = out.groupby("layer")["attention"].transform("sum") if "layer" in keys else out["attention"].sum()
    out["share"] = out["attention"].div(spent).fillna(0.0)  # spent: per layer, or one total
    return out[[*keys, *SPENDING_COLUMNS]].sort_values(keys).reset_index(drop=True)


def router_spending_figure(log: pd.DataFrame, bins: int = 8) -> Figure:
    """Two panels per learned-router log: attention fraction by token role (bars, one colour per layer;
    the role panel is left out for text) and by position range (lines, one per layer)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    roles = "role" in log.columns and log["role"].notna().any()
    fig, axes = plt.subplots(1, 2 if roles else 1, figsize=(11 if roles else 6, 3.6), squeeze=False)
    axes = axes[0]
    if roles:
        table = router_spending(log, ("layer", "role"))
        sns.barplot(table, x="role", y="attention_fraction", hue="layer", ax=axes[0])
        axes[0].set(xlabel="token role", ylabel="attention fraction", ylim=(0, 1.02), title="by token role")
    table = router_spending(log, ("layer", "position"), bins=bins)
    table["layer"] = table["layer"].astype(str)
    sns.pointplot(table, x="position", y="attention_fraction", hue="layer", ax=axes[-1])
    axes[-1].set(xlabel="position", ylabel="attention fraction", ylim=(0, 1.02), title="by position")
    axes[-1].tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    return fig
