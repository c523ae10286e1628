"""The mixed-training schedule `mixed:CHUNK:P_ALL_ATTN:P_ALL_LIN`."""

from __future__ import annotations

import pytest
import torch

from oryx.errors import OryxError
from oryx.routing import Mixed, parse


@pytest.mark.parametrize("chunk, p_attn, p_lin", [
    pytest.param(4, 0.25, 0.25, id="C4-a0.25-l0.25"),
    pytest.param(16, 0.1, 0.3, id="C16-a0.1-l0.3"),
    pytest.param(8, 0.0, 0.0, id="C8-all-mixed"),
    pytest.param(8, 1.0, 0.0, id="C8-all-attention"),
])
def test_rows_and_chunks(chunk, p_attn, p_lin):
    """Rows are all-attention / all-linear at the configured rates, mixed rows are constant per chunk
    with a spread of attention shares, and the draw follows torch's global generator."""
    schedule = parse(f"mixed:{chunk}:{p_attn}:{p_lin}")
    ids = torch.zeros(4000, 5 * chunk + 3, dtype=torch.long)     # a ragged last chunk
    mask = schedule.mask(ids)
    assert mask.shape == ids.shape and mask.dtype == torch.bool
    chunks = torch.nn.functional.pad(mask, (0, -mask.shape[1] % chunk)).view(len(ids), -1, chunk)
    ragged = chunks[:, -1, : mask.shape[1] % chunk]
    assert (chunks[:, :-1] == chunks[:, :-1, :1]).all() and (ragged == ragged[:, :1]).all()
    share = mask.float().mean(1)
    n = len(ids)
    # a mixed row of 6 chunks is all True or all False with probability 2/7 (uniform ratio): count the
    # rows forced by the draw of kind from the excess over that
    tol = 4 * (0.25 / n) ** 0.5
    full, empty = (share == 1).float().mean().item(), (share == 0).float().mean().item()
    mixed = 1 - p_attn - p_lin
    assert abs(full - (p_attn + mixed / 7)) < tol and abs(empty - (p_lin + mixed / 7)) < tol
    if mixed:
        middle = share[(share > 0) & (share < 1)]
        assert middle.std() > 0.15                         # the ratio varies from row to row
    torch.manual_seed(7)
    first = schedule.mask(ids[:50])
    torch.manual_seed(7)
    assert torch.equal(first, schedule.mask(ids[:50]))


def test_draw_count_does_not_depend_on_outcome():
    """The generator advances by the same amount whatever was drawn (resume and DDP rely on it)."""
    ids = torch.zeros(6, 40, dtype=torch.long)
    after = []
    for spec in ("mixed:8:1:0", "mixed:8:0:1", "mixed:8:0:0"):
        torch.manual_seed(3)
        parse(spec).mask(ids)
        after.append(torch.rand(1).item())
    assert after[0] == after[1] == after[2]


def test_string_form_and_errors():
    assert str(parse("mixed:128:0.1:0.1")) == "mixed:128:0.1:0.1" and parse("mixed:64:0:1") == Mixed(64, 0.0, 1.0)
    for spec, message in [("mixed:8:0.6:0.6", "at most 1"), ("mixed:0:0.1:0.1", "CHUNK must be >= 1"),
                          ("mixed:8:0.1", r"takes 3 field\(s\)"), ("mixed:8:x:0.1", "P_ALL_ATTN must be a number"),
                          ("mixed:8:0.1:2", "P_ALL_LIN must be between 0 and 1")]:
        with pytest.raises(OryxError, match=message):
            parse(spec)
