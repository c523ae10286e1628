"""Where a learned router spends attention (analysis.routing), on the store's learned run, whose router
scores follow a known pattern (tests/analysis/store.py: layer 0 the last 8 positions, layer 1 the queries)."""

from __future__ import annotations

import pytest

from analysis import has_router_scores, load_mode_log, open_store, router_spending, router_spending_figure
from oryx.errors import OryxError


def _log(made_store, schedule="learned:0.25"):
    return load_mode_log(open_store(made_store.uri), made_store.mqar_ids[("oryx-mamba2", schedule)])


def test_by_layer_and_role(made_store):
    table = router_spending(_log(made_store), ("layer", "role"))
    layer1 = table[table["layer"] == 1].set_index("role")
    assert layer1.loc["query", "attention_fraction"] == 1.0 and layer1.loc["query", "share"] == 1.0
    assert (layer1.drop("query")["attention_fraction"] == 0).all()
    assert layer1.loc["query", "mean_score"] == 2.0 and layer1.loc["key", "mean_score"] == -2.0
    assert table.groupby("layer")["share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_by_position_in_ranges(made_store):
    table = router_spending(_log(made_store), ("layer", "position"), bins=4)   # 32 positions: 4 ranges of 8
    layer0 = table[table["layer"] == 0].set_index("position")["attention_fraction"]
    assert layer0.to_dict() == {"0-7": 0.0, "8-15": 0.0, "16-23": 0.0, "24-31": 1.0}


def test_by_layer_alone_is_the_measured_fraction(made_store):
    log = _log(made_store)
    table = router_spending(log, "layer")
    assert table["attention_fraction"].tolist() == pytest.approx(log.groupby("layer")["mode"].mean().tolist())


@pytest.mark.parametrize("case, message", [
    pytest.param("no-scores", "no router scores", id="fixed-schedule-log"),
    pytest.param("bad-column", "no column 'depth'", id="unknown-grouping"),
])
def test_errors_are_named(made_store, case, message):
    log = _log(made_store, "last:16") if case == "no-scores" else _log(made_store)
    assert has_router_scores(log) == (case != "no-scores")
    with pytest.raises(OryxError, match=message):
        router_spending(log, "depth" if case == "bad-column" else "role")


def test_figure_has_a_panel_per_view(made_store):
    fig = router_spending_figure(_log(made_store), bins=4)
    assert len(fig.axes) == 2 and all(ax.has_data() for ax in fig.axes)


def test_without_layer_the_share_is_of_the_whole_log(made_store):
    log = _log(made_store)
    table = router_spending(log, "role")
    assert table["share"].sum() == pytest.approx(1.0)
    query = table.set_index("role").loc["query"]
    assert query["share"] == pytest.approx(log[log["role"] == "query"]["mode"].sum() / log["mode"].sum())
