"""Schedules: masks, string round trips, errors, decoding consistency."""

from __future__ import annotations

import pytest
import torch

from oryx import OryxError, routing

IDS = torch.tensor([[5, 1, 2, 3, 1, 7, 7, 0, 2, 9]])

MASKS = [
    ("all_linear", "0000000000"),
    ("all_attention", "1111111111"),
    ("last:3", "0000000111"),
    ("last:0", "0000000000"),
    ("last:20", "1111111111"),
    ("chunks:2:0.5", "1100110011"),
    ("chunks:1:0.25", "1000100010"),
    ("chunks:3:1", "1111111111"),
    ("chunks:4:0", "0000000000"),
    ("spans:1-3,8-20", "0110000011"),
    ("tokens:1,7", "0100111000"),
]


@pytest.mark.parametrize("spec,expected", MASKS, ids=[m[0] for m in MASKS])
def test_masks(spec, expected):
    mask = routing.parse(spec).mask(IDS)
    assert mask.dtype == torch.bool and mask.shape == IDS.shape
    assert "".join(str(int(b)) for b in mask[0]) == expected


SPECS = ["all_linear", "all_attention", "last:32", "chunks:128:0.1", "chunks:64:1", "spans:0-10,20-30",
         "random:0.5:64", "random:0.25:16:7", "tokens:3,17"]


@pytest.mark.parametrize("spec", SPECS)
def test_string_round_trip(spec):
    schedule = routing.parse(spec)
    assert str(schedule) == spec
    assert routing.parse(str(schedule)) == schedule


def test_non_canonical_specs_normalise():
    assert str(routing.parse(" chunks:128:0.10 ")) == "chunks:128:0.1"
    assert str(routing.parse("random:1.0:4")) == "random:1:4"


def test_constructors_match_specs():
    assert routing.chunks(128, 0.1) == routing.parse("chunks:128:0.1")
    assert routing.spans([(0, 4), (9, 12)]) == routing.parse("spans:0-4,9-12")
    assert routing.random(0.3, 8, seed=2) == routing.parse("random:0.3:8:2")
    assert routing.last(4) == routing.parse("last:4") and routing.tokens([1, 2]) == routing.parse("tokens:1,2")


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.25, 1 / 3, 0.5])
def test_chunks_attention_fraction_is_exact_over_whole_periods(ratio):
    schedule = routing.chunks(1, round(ratio, 6))
    frac = schedule.mask(torch.zeros(1, 6000, dtype=torch.long)).float().mean().item()
    assert abs(frac - round(ratio, 6)) < 1e-3


def test_random_is_seeded_and_decoding_consistent():
    s = routing.parse("random:0.4:3:11")
    ids = torch.zeros(3, 50, dtype=torch.long)
    full = s.mask(ids)
    assert torch.equal(full, s.mask(ids))
    steps = torch.cat([s.mask(ids[:, i : i + 1], start=i) for i in range(50)], 1)
    assert torch.equal(full, steps)
    assert not torch.equal(full[0], full[1])  # rows draw independently
    assert not torch.equal(full, routing.parse("random:0.4:3:12").mask(ids))
    chunked = full.view(3, -1)[:, :48].reshape(3, 16, 3)
    assert (chunked.all(-1) | ~chunked.any(-1)).all()  # whole chunks share a mode


def test_random_without_seed_uses_the_global_generator():
    s = routing.parse("random:0.5:2")
    torch.manual_seed(3)
    a = s.mask(torch.zeros(2, 40, dtype=torch.long))
    torch.manual_seed(3)
    assert torch.equal(a, s.mask(torch.zeros(2, 40, dtype=torch.long)))


@pytest.mark.parametrize("spec", ["chunks:2:0.5", "spans:3-7", "random:0.5:2:1", "tokens:4"])
def test_position_schedules_give_decoding_the_parallel_modes(spec):
    s = routing.parse(spec)
    ids = torch.randint(0, 6, (2, 17))
    assert torch.equal(s.mask(ids), torch.cat([s.mask(ids[:, i : i + 1], start=i) for i in range(17)], 1))


BAD = ["", "chunks", "chunks:0:0.1", "chunks:8:1.5", "chunks:8:abc", "chunks:8:nan", "last:-1", "last:x",
       "last:1:2", "spans:5-2", "spans:1-2-3", "spans:a-b", "random:0.1", "random:0.1:0", "random:2:4",
       "tokens:", "tokens:a", "sometimes", "all_linear:1"]


@pytest.mark.parametrize("spec", BAD)
def test_malformed_specs_raise_naming_the_problem(spec):
    with pytest.raises(OryxError) as err:
        routing.parse(spec)
    assert str(err.value)  # a message, not an empty error
