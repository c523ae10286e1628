"""analysis.modes and analysis.plots on the mode logs and results of a real store."""

import matplotlib
import pytest

matplotlib.use("Agg")

from analysis import (
    accuracy_vs_attention,
    attention_by_role,
    attention_by_role_bars,
    history_frame,
    load_mode_log,
    open_store,
    read_mode_log,
    results_frame,
    routing_grid,
    routing_heatmap,
    save_figure,
    training_curves,
)
from oryx.errors import OryxError
from tests.analysis.store import MQAR, N_LAYERS


@pytest.fixture(scope="module")
def store(made_store):
    return open_store(made_store.uri)


def _log(store, made_store, family, schedule):
    return load_mode_log(store, made_store.mqar_ids[(family, schedule)])


def test_routing_grid_is_what_the_schedule_ran(store, made_store):
    grid = routing_grid(_log(store, made_store, "oryx-mamba2", "last:16"), example=1)
    T = MQAR.input_seq_len
    assert grid.modes.shape == (N_LAYERS, T)
    assert grid.modes[:, : T - 16].sum() == 0 and grid.modes[:, T - 16:].all()
    batch = MQAR.generate()
    assert grid.tokens.tolist() == batch.input_ids[1].tolist()
    assert grid.roles == [batch.role_names[r] for r in batch.roles[1].tolist()]
    # a prediction at t targets t + 1: known exactly before each answer position
    answers = batch.answer_mask[1].nonzero().flatten().tolist()
    assert [t + 1 for t, c in enumerate(grid.correct) if c == 1.0] == answers


@pytest.mark.parametrize("family, schedule, expected", [
    pytest.param("transformer", "native", {"key": 1.0, "value": 1.0, "query": 1.0}, id="transformer-all"),
    pytest.param("mamba2", "native", {"key": 0.0, "value": 0.0, "query": 0.0}, id="mamba2-none"),
    pytest.param("oryx-mamba2", "all_attention", {"key": 1.0, "answer": 1.0}, id="oryx-all-attention"),
])
def test_attention_by_role(store, made_store, family, schedule, expected):
    table = attention_by_role(_log(store, made_store, family, schedule))
    got = dict(zip(table["role"], table["attention_fraction"]))
    for role, fraction in expected.items():
        assert got[role] == pytest.approx(fraction)


def test_attention_by_role_counts_positions(store, made_store):
    log = _log(store, made_store, "oryx-mamba2", "last:16")
    table = attention_by_role(log, by=("layer",))
    assert table["positions"].sum() == len(log)
    direct = log[log["role"] == "key"]["mode"].mean()
    assert table[table["role"] == "key"]["attention_fraction"].mean() == pytest.approx(direct)


def test_mode_log_errors(store, made_store, tmp_path):
    with pytest.raises(OryxError, match=r"has no modes/modes\.parquet"):
        load_mode_log(store, made_store.train_ids["mamba2"])
    with pytest.raises(OryxError, match="not in this mode log"):
        routing_grid(_log(store, made_store, "mamba2", "native"), example=99)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(OryxError, match="not a readable parquet"):
        read_mode_log(bad)
    with pytest.raises(OryxError, match="no token roles"):
        attention_by_role(_log(store, made_store, "mamba2", "native").assign(role=None))


def test_figures_are_written(store, made_store, tmp_path):
    """Each figure draws from real frames and lands as a PNG; the data on the axes is the data given."""
    results = results_frame(store)
    fig = accuracy_vs_attention(results)
    ax = fig.axes[0]
    oryx_line = next(line for line in ax.get_lines() if len(line.get_xdata()) == 3)
    assert list(oryx_line.get_xdata()) == pytest.approx([0.0, 0.5, 1.0])
    assert list(oryx_line.get_ydata()) == pytest.approx([0.35, 0.70, 0.90])
    reference = sorted(line.get_ydata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 2)
    assert reference == pytest.approx([0.30, 0.95])  # mamba2 and transformer as horizontal lines
    log = _log(store, made_store, "oryx-mamba2", "last:16")
    history = history_frame(store, list(made_store.train_ids.values()), "train/loss", config=("model.preset",))
    figures = {
        "fraction": fig,
        "routing": routing_heatmap(routing_grid(log, 0), decode=lambda i: f"t{i}"),
        "roles": attention_by_role_bars(attention_by_role(log)),
        "curves": training_curves(history, hue="model.preset", metric="train/loss"),
    }
    for name, figure in figures.items():
        path = save_figure(figure, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_figure_errors(store):
    results = results_frame(store)
    with pytest.raises(OryxError, match="no retrieval accuracy for task 'niah'"):
        accuracy_vs_attention(results, task="niah")
    with pytest.raises(OryxError, match="no column 'lr'"):
        training_curves(results.rename(columns={"run_id": "x"}), hue="lr")
