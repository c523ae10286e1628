"""MQAR: every label checked against its sequence, power-law gaps, disjoint halves, seeding."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from oryx.data.synthetic import IGNORE, MQARConfig, SyntheticBatch, mqar
from oryx.errors import OryxError
from tests.data.helpers import global_rng_state, same_rng_state

CASES = [
    pytest.param(dict(vocab_size=12, num_kv_pairs=2, input_seq_len=16, random_non_queries=False), id="V12-K2-T16-zeros"),
    pytest.param(dict(vocab_size=64, num_kv_pairs=4, input_seq_len=64), id="V64-K4-T64"),
    pytest.param(dict(vocab_size=8192, num_kv_pairs=8, input_seq_len=64), id="V8192-K8-T64-zoology"),
    pytest.param(dict(vocab_size=256, num_kv_pairs=16, input_seq_len=64, power_a=1.0), id="V256-K16-T64-full"),
    pytest.param(dict(vocab_size=100, num_kv_pairs=3, input_seq_len=31), id="V100-K3-T31-odd"),
]


def check_example(ids: list[int], labels: list[int], roles: list[int], distance: list[int], V: int, K: int,
                  zero_filler: bool) -> None:
    """Read one example as a model would and check every label, role and slice against it."""
    names = [mqar.ROLES[r] for r in roles]
    context = {}
    for i in range(K):  # the context: k v k v ..., keys and values from disjoint halves of the vocabulary
        key, value = ids[2 * i], ids[2 * i + 1]
        assert names[2 * i:2 * i + 2] == ["key", "value"]
        assert 1 <= key < V // 2 <= value < V, (key, value)
        assert key not in context, "keys of an example must be distinct"
        context[key] = (value, 2 * i)
    assert len({v for v, _ in context.values()}) == K, "values of an example must be distinct"
    queried = []
    for t in range(len(ids)):
        if labels[t] == IGNORE:
            assert names[t] != "answer" and distance[t] == -1
            if names[t] == "filler" and zero_filler:
                assert ids[t] == 0
            continue
        # a label: the prediction made at t-1 (the query) must give the value that followed that key
        assert names[t - 1] == "query" and names[t] == "answer"
        key = ids[t - 1]
        value, key_pos = context[key]
        assert labels[t] == value == ids[t]
        assert distance[t] == (t - 1) - key_pos
        queried.append(key)
    assert sorted(queried) == sorted(context), "every key is queried exactly once"
    assert names.count("query") == names.count("answer") == K


@pytest.mark.parametrize("kwargs", CASES)
def test_every_label_matches_its_sequence(kwargs, seed):
    config = MQARConfig(num_examples=64, seed=seed, **kwargs)
    batch = config.generate()
    N, T = config.num_examples, config.input_seq_len
    assert batch.input_ids.shape == batch.labels.shape == batch.roles.shape == (N, T)
    assert batch.input_ids.dtype == batch.labels.dtype == torch.int64 and batch.roles.dtype == torch.uint8
    assert batch.role_names == mqar.ROLES
    assert int(batch.input_ids.min()) >= 0 and int(batch.input_ids.max()) < config.vocab_size
    assert torch.equal(batch.slices["num_kv_pairs"], torch.full((N,), config.num_kv_pairs))
    for n in range(N):
        check_example(batch.input_ids[n].tolist(), batch.labels[n].tolist(), batch.roles[n].tolist(),
                      batch.slices["query_distance"][n].tolist(), config.vocab_size, config.num_kv_pairs,
                      zero_filler=not config.random_non_queries)


def test_row_blocks_join_seamlessly(monkeypatch, seed):
    """Large N is drawn in blocks of rows; with tiny blocks every example must still be right."""
    monkeypatch.setattr(mqar, "_BLOCK_ELEMENTS", 3 * 32)  # 3 rows per block at vocab 64
    config = MQARConfig(vocab_size=64, num_kv_pairs=4, input_seq_len=32, num_examples=10, seed=seed)
    batch = config.generate()
    assert len(batch) == 10
    for n in range(10):
        check_example(batch.input_ids[n].tolist(), batch.labels[n].tolist(), batch.roles[n].tolist(),
                      batch.slices["query_distance"][n].tolist(), 64, 4, zero_filler=False)


def gap_histogram(config: MQARConfig) -> np.ndarray:
    """Empirical distribution of the query gaps (query position = 2K + 2 * gap) of every pair."""
    batch = config.generate()
    query_pos = batch.role_mask("query").nonzero()[:, 1]
    gaps = (query_pos - 2 * config.num_kv_pairs) // 2
    counts = np.bincount(gaps.numpy(), minlength=config.gap_probabilities().numel())
    return counts / counts.sum()


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


@pytest.mark.parametrize("power_a", [pytest.param(0.01, id="a0.01-zoology"), pytest.param(0.3, id="a0.3"),
                                     pytest.param(1.0, id="a1-uniform")])
def test_single_pair_gaps_follow_the_power_law(power_a, seed):
    """With one pair the gap is one draw from p(g) ~ (g+1)^(a-1): the histogram must match p, and p must
    be far enough from uniform (for a < 1) that uniform gaps could not pass the same check."""
    config = MQARConfig(vocab_size=64, num_kv_pairs=1, input_seq_len=64, power_a=power_a, num_examples=20_000, seed=seed)
    p = config.gap_probabilities().numpy()
    uniform = np.full_like(p, 1 / p.size)
    # twice the expected total variation of an N-sample histogram from p (sum of E|p_hat - p| / 2)
    tolerance = float(np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * config.num_examples))))
    assert total_variation(gap_histogram(config), p) < tolerance
    if power_a < 0.5:
        assert total_variation(uniform, p) > 5 * tolerance


def test_many_pairs_favour_short_gaps(seed):
    """With 8 pairs the gaps are drawn without replacement; power_a=0.01 must still put far more queries
    near the context than uniform gaps (mean gap (space-1)/2) would."""
    config = MQARConfig(vocab_size=256, num_kv_pairs=8, input_seq_len=128, num_examples=4000, seed=seed)
    hist = gap_histogram(config)
    mean_gap = float((np.arange(hist.size) * hist).sum())
    uniform_mean = (hist.size - 1) / 2
    assert mean_gap < 0.7 * uniform_mean, (mean_gap, uniform_mean)
    assert hist[:8].sum() > 2 * 8 / hist.size  # the first 8 of 56 gaps hold more than twice their share


def test_same_seed_same_batch_other_seed_other_batch(seed):
    a = MQARConfig(vocab_size=128, num_kv_pairs=4, input_seq_len=32, num_examples=16, seed=seed).generate()
    b = MQARConfig(vocab_size=128, num_kv_pairs=4, input_seq_len=32, num_examples=16, seed=seed).generate()
    c = MQARConfig(vocab_size=128, num_kv_pairs=4, input_seq_len=32, num_examples=16, seed=seed + 1).generate()
    for name in ("input_ids", "labels", "roles"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert torch.equal(a.slices["query_distance"], b.slices["query_distance"])
    assert not torch.equal(a.input_ids, c.input_ids)


def test_global_random_state_untouched():
    before = global_rng_state()
    MQARConfig(vocab_size=128, num_kv_pairs=4, input_seq_len=32, num_examples=8).generate()
    assert same_rng_state(before, global_rng_state())


def test_worked_example_in_docstring():
    result = doctest.testmod(mqar, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize("kwargs", [
    pytest.param(dict(num_kv_pairs=20, input_seq_len=64), id="too-many-pairs-for-length"),
    pytest.param(dict(vocab_size=8, num_kv_pairs=4, input_seq_len=64), id="too-few-key-ids"),
    pytest.param(dict(power_a=0.0), id="power-a-zero"),
    pytest.param(dict(power_a=1.5), id="power-a-above-1"),
    pytest.param(dict(num_examples=0), id="no-examples"),
    pytest.param(dict(seed=-1), id="negative-seed"),
    pytest.param(dict(input_seq_len="long"), id="wrong-type"),
    pytest.param(dict(num_pairs=4), id="unknown-key"),
])
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        MQARConfig(**kwargs)


def test_batches_concatenate_and_index(seed):
    """One batch per swept config (here num_kv_pairs), joined; rows come back out by indexing."""
    parts = [MQARConfig(vocab_size=64, num_kv_pairs=k, input_seq_len=32, num_examples=3, seed=seed).generate()
             for k in (2, 4)]
    joined = SyntheticBatch.concat(parts)
    assert len(joined) == 6 and joined.slices["num_kv_pairs"].tolist() == [2, 2, 2, 4, 4, 4]
    assert torch.equal(joined[3:].input_ids, parts[1].input_ids)
    assert torch.equal(joined[4].slices["query_distance"], parts[1].slices["query_distance"][1:2])
    other = MQARConfig(vocab_size=64, num_kv_pairs=2, input_seq_len=16, num_examples=3).generate()
    with pytest.raises(OryxError, match="different lengths"):
        SyntheticBatch.concat([parts[0], other])
    with pytest.raises(OryxError, match="unknown role"):
        joined.role_mask("needle")
