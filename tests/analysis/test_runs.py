"""analysis.runs and analysis.tables on a real store (tests/analysis/store.py says what it holds)."""

import pandas as pd
import pytest

from analysis import (
    history_frame,
    lm_table,
    open_store,
    parse_metric,
    results_frame,
    retrieval_table,
    runs_frame,
    write_table,
)
from analysis.runs import RESULT_COLUMNS
from oryx.errors import OryxError
from tests.analysis.store import FAMILIES, LM_RESULTS, MQAR, MQAR_ACCURACY, loss


@pytest.fixture(scope="module")
def results(made_store):
    return results_frame(open_store(made_store.uri))


@pytest.mark.parametrize("key, task, expected", [
    pytest.param("accuracy", "mqar", ("retrieval", "accuracy", "all", "all"), id="overall"),
    pytest.param("accuracy/num_kv_pairs=8", "mqar", ("retrieval", "accuracy", "num_kv_pairs", "8"), id="slice-equals"),
    pytest.param("accuracy/query_distance:4-7", "mqar", ("retrieval", "accuracy", "query_distance", "4-7"),
                 id="slice-colon"),
    pytest.param("exact_match", "niah", ("retrieval", "exact_match", "all", "all"), id="exact-match"),
    pytest.param("piqa/acc_norm", "piqa", ("lm-eval", "acc_norm", "all", "all"), id="lm-eval"),
    pytest.param("piqa/acc/len:3", "piqa", ("lm-eval", "acc", "len", "3"), id="lm-eval-slice"),
    pytest.param("attention_fraction/layer_1", "mqar", None, id="fraction-is-a-column"),
    pytest.param("accuracy/oops", "mqar", None, id="malformed-slice"),
])
def test_parse_metric(key, task, expected):
    assert parse_metric(key, task) == expected


def test_results_one_row_per_run_task_slice_schedule(results):
    retrieval = results[results["metric"] == "accuracy"]
    assert not retrieval.duplicated(["run_id", "task", "slice", "slice_value", "schedule"]).any()
    assert len(retrieval) == 2 * len(MQAR_ACCURACY)  # overall + one num_kv_pairs slice each
    for (family, schedule), accuracy in MQAR_ACCURACY.items():
        row = retrieval[(retrieval["family"] == family) & (retrieval["schedule"] == schedule)]
        assert set(row["value"]) == {accuracy}
        assert set(row["slice_value"]) == {"all", str(MQAR.num_kv_pairs)}


def test_results_carry_the_training_config(results, made_store):
    for family in FAMILIES:
        rows = results[results["family"] == family]
        assert set(rows["train_run_id"]) == {made_store.train_ids[family]}
        assert set(rows["config.model.preset"]) == {f"{family}-tiny"}


@pytest.mark.parametrize("family, kinds, baseline", [
    pytest.param("transformer", "none", True, id="transformer"),
    pytest.param("mamba2", "mamba2", True, id="mamba2"),
    pytest.param("oryx-mamba2", "mamba2", False, id="oryx-mamba2"),
])
def test_results_say_what_the_model_was_from_the_training_tags(results, family, kinds, baseline):
    rows = results[results["family"] == family]
    assert set(rows["linear_kinds"]) == {kinds} and set(rows["baseline"]) == {baseline}


@pytest.mark.parametrize("tag, schedule, baseline", [
    pytest.param("false", "native", False, id="tag-over-schedule"),
    pytest.param("true", "all_linear", True, id="tag-baseline"),
    pytest.param(None, "native", True, id="untagged-native"),
    pytest.param(None, "last:16", False, id="untagged-schedule"),
])
def test_baseline_column_reads_the_tag_else_the_schedule(tag, schedule, baseline):
    """A training run from before the tags (or none known): the eval's own `native` schedule says it."""
    from types import SimpleNamespace

    from analysis.runs import _model_columns
    from oryx.tracking import BASELINE_TAG

    run = None if tag is None else SimpleNamespace(data=SimpleNamespace(tags={BASELINE_TAG: tag}))
    assert _model_columns(run, schedule)["baseline"] is baseline


@pytest.mark.parametrize("family, schedule, fraction", [
    pytest.param("transformer", "native", 1.0, id="transformer"),
    pytest.param("mamba2", "native", 0.0, id="mamba2"),
    pytest.param("oryx-mamba2", "last:16", 0.5, id="oryx-last16-of-32"),
])
def test_measured_attention_fraction_is_read(results, family, schedule, fraction):
    rows = results[(results["family"] == family) & (results["schedule"] == schedule) & (results["task"] == "mqar")]
    assert rows["attention_fraction"].tolist() == pytest.approx([fraction] * len(rows))


def test_runs_frame_has_params_and_last_metrics(made_store):
    frame = runs_frame(open_store(made_store.uri), kind="train")
    assert sorted(frame["run_name"]) == sorted(f"train-{f}" for f in FAMILIES)
    for family in FAMILIES:
        row = frame[frame["run_name"] == f"train-{family}"].iloc[0]
        assert row["train/loss"] == pytest.approx(loss(family, 4))
        assert row["model.d_model"] == "64"


def test_history_frame_is_every_step(made_store):
    ids = list(made_store.train_ids.values())
    history = history_frame(open_store(made_store.uri), ids, "train/loss", config=("model.preset",))
    assert len(history) == 5 * len(ids)
    for family, run_id in made_store.train_ids.items():
        rows = history[history["run_id"] == run_id]
        assert rows["value"].tolist() == pytest.approx([loss(family, s) for s in range(5)])
        assert set(rows["model.preset"]) == {f"{family}-tiny"}


def test_retrieval_table(results):
    table = retrieval_table(results)
    assert list(table.columns) == ["family", "schedule", "mqar accuracy", "mqar attention_fraction"]
    got = {(r.family, r.schedule): r._3 for r in table.itertuples()}
    assert got == pytest.approx(MQAR_ACCURACY)
    oryx = table[table["family"] == "oryx-mamba2"]
    assert oryx["mqar attention_fraction"].is_monotonic_increasing


def test_lm_table_rows_families_columns_tasks_then_average(results):
    table = lm_table(results)
    assert list(table.columns) == ["family", "schedule", "wikitext word_perplexity", "piqa acc", "avg"]
    for family, tasks in LM_RESULTS.items():
        row = table[table["family"] == family].iloc[0]
        assert row["piqa acc"] == pytest.approx(tasks["piqa"]["acc"])
        assert row["wikitext word_perplexity"] == pytest.approx(tasks["wikitext"]["word_perplexity"])
        assert row["avg"] == pytest.approx(tasks["piqa"]["acc"])  # perplexity stays out of the average


def test_a_rerun_replaces_older_numbers(results):
    newer = results[results["task"] == "piqa"].assign(start_time=pd.Timestamp.now(), value=0.99)
    table = lm_table(pd.concat([results, newer]))
    assert set(table["piqa acc"]) == {0.99}


def test_write_table_markdown_and_csv(results, tmp_path):
    table = retrieval_table(results)
    md, csv = write_table(table, tmp_path / "tables", "retrieval")
    assert md.read_text().splitlines()[0].startswith("| family")
    assert "oryx-mamba2" in md.read_text()
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)


@pytest.mark.parametrize("call, message", [
    pytest.param(lambda s: history_frame(s, ["nope"], "train/loss"), "no run 'nope'", id="unknown-run"),
    pytest.param(lambda s: history_frame(s, [], "train/loss"), "logged metric", id="no-runs"),
])
def test_bad_requests_name_the_problem(made_store, call, message):
    with pytest.raises(OryxError, match=message):
        call(open_store(made_store.uri))


def test_missing_store_is_an_error_not_an_empty_store(tmp_path):
    with pytest.raises(OryxError, match="no tracking store"):
        open_store(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_empty_results_give_clear_table_errors():
    empty = pd.DataFrame(columns=list(RESULT_COLUMNS))
    with pytest.raises(OryxError, match="no retrieval results"):
        retrieval_table(empty)
    with pytest.raises(OryxError, match="no language-modelling results"):
        lm_table(empty)
