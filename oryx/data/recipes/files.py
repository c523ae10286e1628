"""Recipe `files`: local UTF-8 text files (paths, directories, globs)."""

from __future__ import annotations

import re
from functools import partial
from typing import ClassVar, Literal

from pydantic import Field

from oryx.data.files import expand, read_text
from oryx.data.recipes.base import Document, Recipe

_BLANK_LINES = re.compile(r"\n\s*\n")


class FilesRecipe(Recipe):
    """Each file is a document, or (document="paragraph" | "line") each blank-line-separated paragraph or
    each non-empty line of the files is one, so a single big file can still be split by document."""

    name: ClassVar[str] = "files"

    inputs: list[str] = Field(min_length=1, description="files, directories (read recursively) or globs")
    document: Literal["file", "paragraph", "line"] = Field("file", description="what one document is")

    def documents(self) -> list[Document]:
        files = expand(self.inputs)
        if self.document == "file":
            return [Document(str(path), partial(read_text, path)) for path in files]
        docs = []
        for path in files:
            text = read_text(path)
            pieces = _BLANK_LINES.split(text) if self.document == "paragraph" else text.splitlines()
            pieces = [p.strip() for p in pieces if p.strip()]
            docs += [Document(f"{path}#{i}", partial(str, piece)) for i, piece in enumerate(pieces)]
        return docs
