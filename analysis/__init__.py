"""Analysis of what training and evaluation logged: MLflow runs as pandas frames, plots and the paper's
tables. Reads stores, parquet and CSV; never imports the model or the trainer (docs/architecture.md).

    from analysis import open_store, results_frame, retrieval_table, accuracy_vs_attention
    store = open_store()                          # the store the commands use
    results = results_frame(store)
    retrieval_table(results); accuracy_vs_attention(results)
"""

import os

# Reading a mode log downloads an artifact; mlflow's progress bar for that would clutter notebooks and
# the reproduce output (a user can still switch it on).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from analysis.lm import LM_COLUMNS, lm_frame
from analysis.modes import RoutingGrid, attention_by_role, load_mode_log, read_mode_log, routing_grid
from analysis.plots import (
    accuracy_vs_attention,
    attention_by_role_bars,
    routing_heatmap,
    save_figure,
    training_curves,
)
from analysis.routing import has_router_scores, router_spending, router_spending_figure
from analysis.runs import (
    Store,
    history_frame,
    latest,
    open_store,
    parse_metric,
    pick_mixed_run,
    results_frame,
    retrieval_rows,
    runs_frame,
    varying,
)
from analysis.tables import (
    format_spread,
    is_oracle,
    lm_study_table,
    lm_table,
    retrieval_results,
    retrieval_table,
    to_markdown,
    write_table,
)

__all__ = [
    "LM_COLUMNS",
    "RoutingGrid",
    "Store",
    "accuracy_vs_attention",
    "attention_by_role",
    "attention_by_role_bars",
    "format_spread",
    "has_router_scores",
    "history_frame",
    "is_oracle",
    "latest",
    "lm_frame",
    "lm_study_table",
    "lm_table",
    "load_mode_log",
    "open_store",
    "parse_metric",
    "pick_mixed_run",
    "read_mode_log",
    "results_frame",
    "retrieval_results",
    "retrieval_rows",
    "retrieval_table",
    "router_spending",
    "router_spending_figure",
    "routing_grid",
    "routing_heatmap",
    "runs_frame",
    "save_figure",
    "to_markdown",
    "training_curves",
    "varying",
    "write_table",
]
