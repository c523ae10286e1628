"""User-facing errors. The command line prints these as one line and exits with status 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class OryxError(ValueError):
    """A mistake in what the user asked for (bad input, config, checkpoint, schedule)."""


class CheckpointError(OryxError):
    """A checkpoint directory that is missing, incomplete or corrupt."""


def format_validation_error(e: ValidationError, first_only: bool = False) -> str:
    """'model.d_model: Input should be a valid integer (got 'abc')' for each problem, '; '-joined
    (only the first with `first_only`): what every config, manifest and preset error says."""
    parts = []
    for err in e.errors()[:1] if first_only else e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        got = f" (got {_short(err['input'])})" if _shows_input(err) else ""
        msg = "unknown key" if err.get("type") == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}{got}" if loc else f"{msg}{got}")
    return "; ".join(parts)


def _shows_input(err: dict) -> bool:
    """Whether the offending value helps: not for an unknown or a missing key (pydantic's input is then
    the whole enclosing mapping), nor for a mapping or a list."""
    return (err.get("type") not in ("extra_forbidden", "missing") and "input" in err
            and not isinstance(err["input"], (dict, list)))


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
