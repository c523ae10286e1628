"""What a recipe is: typed options (a pydantic model) that list the documents of a corpus."""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from oryx.errors import OryxError


@dataclass(frozen=True)
class Document:
    """One document of a corpus: a name (recorded in documents.jsonl) and a function returning its text
    (called once, while the corpus is written, so a recipe need not hold every text in memory)."""

    name: str
    read: Callable[[], str]


class Recipe(BaseModel):
    """A recipe's options. Subclasses set `name` and implement `documents()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]

    @abstractmethod
    def documents(self) -> list[Document]:
        """The corpus's documents, in a fixed order (the train/validation split is drawn over it)."""

    def source(self) -> dict:
        """Where the text came from, beyond the options (e.g. an archive's sha256), for the manifest."""
        return {}

    @classmethod
    def from_options(cls, options: dict) -> Recipe:
        """Validate `options`; an option this recipe does not take is an OryxError naming the ones it takes."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise OryxError(f"recipe {cls.name!r} takes no option {', '.join(map(repr, unknown))} "
                            f"(its options: {', '.join(cls.model_fields) or 'none'})")
        return cls.model_validate(options)


def cache_dir() -> Path:
    """Where downloads are kept between runs: $ORYX_CACHE_DIR, else $XDG_CACHE_HOME/oryx, else ~/.cache/oryx."""
    if os.environ.get("ORYX_CACHE_DIR"):
        return Path(os.environ["ORYX_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "oryx"
