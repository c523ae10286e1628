"""How a pydantic validation error reads on the command line (`format_validation_error`)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from oryx.errors import format_validation_error


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: _Inner


@pytest.mark.parametrize("tree, expected", [
    pytest.param({"name": "a", "inner": {"width": "wide"}},
                 "inner.width: Input should be a valid integer, unable to parse string as an integer (got 'wide')",
                 id="wrong-type-shows-the-value"),
    pytest.param({"name": "a", "inner": {}}, "inner.width: Field required", id="missing-key-no-mapping-dump"),
    pytest.param({"name": "a", "inner": {"width": 1, "colour": "red"}}, "inner.colour: unknown key", id="unknown-key"),
    pytest.param({"name": "a", "inner": [1, 2]}, "inner: Input should be a valid dictionary or instance of _Inner",
                 id="a-list-is-not-dumped"),
    pytest.param({"name": "a", "inner": {"width": "x" * 200}}, "(got '" + "x" * 76 + "...)", id="long-value-shortened"),
])
def test_first_error_reads_as_one_short_line(tree, expected):
    with pytest.raises(ValidationError) as info:
        _Config.model_validate(tree)
    text = format_validation_error(info.value, first_only=True)
    assert text == expected if not expected.startswith("(got") else text.endswith(expected), text
    assert len(text) < 200 and "\n" not in text
