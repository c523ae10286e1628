"""Recipe `hf`: a Hugging Face `datasets` dataset, one document per row.

`dataset` is a hub name (needs a reachable hub, or a copy in the local cache with HF_DATASETS_OFFLINE=1)
or a local directory (written by `Dataset.save_to_disk`, or data files `load_dataset` can read), which
never touches the network. Before asking the hub, the recipe checks in a few seconds that it answers,
so an unreachable hub gives a clear error instead of minutes of retries. Empty rows are left out.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from oryx.data import hub
from oryx.data.recipes.base import Document, Recipe
from oryx.errors import OryxError


class HFRecipe(Recipe):
    """Rows of one split of a dataset; the text of a row is its `text_field` column."""

    name: ClassVar[str] = "hf"

    dataset: str = Field(description="hub name (e.g. 'wikitext') or a local dataset directory")
    subset: str | None = Field(None, description="configuration name (e.g. 'wikitext-103-raw-v1')")
    split: str = Field("train", description="the dataset's split to read (the corpus is re-split by document)")
    text_field: str = Field("text", description="column holding the text")
    max_documents: int | None = Field(None, ge=1, description="read at most this many rows (the first ones)")

    def documents(self) -> list[Document]:
        rows = self._load()
        if self.text_field not in rows.column_names:
            raise OryxError(f"dataset {self.dataset!r} has no column {self.text_field!r} "
                            f"(its columns: {', '.join(rows.column_names)}); pass --text-field")
        if self.max_documents is not None:
            rows = rows.select(range(min(self.max_documents, len(rows))))
        # rows are read one at a time while the corpus is written (arrow random access), so a large
        # dataset is never held in memory as Python strings; empty rows are dropped by `prepare`
        rows = rows.select_columns([self.text_field])
        return [Document(f"{self.split}:{i}", partial(_text, rows, self.text_field, i)) for i in range(len(rows))]

    def _load(self):
        """The split as a datasets.Dataset."""
        import datasets

        local = Path(self.dataset).expanduser()
        if local.is_dir():
            if (local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(local))
                return _pick_split(loaded, self.split, local) if isinstance(loaded, datasets.DatasetDict) else loaded
            return self._call(lambda: datasets.load_dataset(str(local), self.subset, split=self.split))
        if not hub.offline():
            _probe_hub()
        return self._call(lambda: datasets.load_dataset(self.dataset, self.subset, split=self.split))

    def _call(self, load):
        try:
            return load()
        except (ConnectionError, OSError) as e:
            hint = (" (the hub is off: HF_DATASETS_OFFLINE or HF_HUB_OFFLINE is set, and the dataset is not "
                    "in the local cache)") if hub.offline() else ""
            raise OryxError(f"cannot load dataset {self.dataset!r}{hint}: {e}") from None
        except (ValueError, FileNotFoundError) as e:  # unknown split or config, bad data files
            raise OryxError(f"cannot load dataset {self.dataset!r}: {e}") from None


def _text(rows, field: str, i: int) -> str:
    return rows[i][field] or ""


def _pick_split(loaded, split: str, path: Path):
    if split not in loaded:
        raise OryxError(f"{path} has no split {split!r} (its splits: {', '.join(loaded)})")
    return loaded[split]


def _probe_hub() -> None:
    """OryxError unless the hub answers within a few seconds (`oryx.data.hub`)."""
    if (reason := hub.unreachable_reason()) is not None:
        raise OryxError(f"cannot reach the Hugging Face hub at {hub.endpoint()} ({reason}). Use a local dataset "
                        f"directory, or set HF_DATASETS_OFFLINE=1 to read a copy from the local cache")
