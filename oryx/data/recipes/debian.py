"""Debian packages as a text source: download with `apt-get download`, read the .deb in Python.

    deb = fetch_deb("python3.11-doc")                      # cached under <cache>/debian/
    for name, data in deb_members(deb, ["./usr/share/doc/python3.11/html/_sources/*.txt"]): ...
    html_text(data.decode())                               # visible text of an HTML page
    dictd_entries(dict_dz_bytes, index_text)               # the entries of a dictd dictionary, in order

A .deb is an `ar` archive (debian-binary, control.tar.*, data.tar.*); the files sit in data.tar.xz
(or .gz/.bz2), read with `tarfile`. No dpkg and no root are needed to read one, so the same code runs on
any machine that holds the cached .deb files; only the download needs apt and a reachable archive.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from oryx.data.recipes.base import cache_dir
from oryx.data.recipes.download import download
from oryx.errors import OryxError

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60  # bytes of an ar member header: name 16, dates/ids/mode 32, size 10, magic 2


def fetch_deb(package: str, directory: Path | None = None) -> Path:
    """The cached .deb of `package` (the version the machine's apt lists offer when first fetched),
    downloaded with `apt-get download` into `directory` (default <cache>/debian/) when none is there.
    Raises RegistryUnreachable when apt cannot reach the archive, OryxError otherwise."""
    directory = directory or cache_dir() / "debian"
    cached = sorted(directory.glob(f"{package}_*.deb"))
    if cached:
        return cached[-1]
    if shutil.which("apt-get") is None:
        raise OryxError(f"cannot download the Debian package {package!r}: apt-get is not installed here "
                        f"(put its .deb into {directory} by hand, or prepare the corpus on a Debian machine)")
    return download(["apt-get", "download", package], directory, f"{package}_*.deb", f"Debian package {package}")


def deb_members(path: Path, include: list[str] | tuple[str, ...], exclude: tuple[str, ...] = ()) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of each regular file of the package's data whose name (as in the archive,
    './usr/...') matches a glob of `include` and none of `exclude`, in archive order."""
    with _data_tar(path) as tar:
        try:  # a truncated or damaged archive fails while it is read, not when it is opened
            for member in tar:
                if not member.isfile():
                    continue
                if any(fnmatch.fnmatchcase(member.name, p) for p in include) and \
                        not any(fnmatch.fnmatchcase(member.name, p) for p in exclude):
                    yield member.name, tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise OryxError(f"{path}: its data archive is damaged ({e}; delete it to download again)") from None


def _data_tar(path: Path) -> tarfile.TarFile:
    """The data.tar.* member of a .deb, opened for streaming."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise OryxError(f"cannot read {path}: {e}") from None
    if not raw.startswith(_AR_MAGIC):
        raise OryxError(f"{path} is not a Debian package (no ar header; corrupt? delete it to download again)")
    at = len(_AR_MAGIC)
    while at + _AR_HEADER <= len(raw):
        header = raw[at:at + _AR_HEADER]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip() or 0)
        except (UnicodeDecodeError, ValueError):
            raise OryxError(f"{path}: a damaged ar header (corrupt? delete it to download again)") from None
        body = raw[at + _AR_HEADER:at + _AR_HEADER + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise OryxError(f"{path}: zstd-compressed package data ({name}) is not supported; use a package "
                                "built with xz or gzip")
            try:
                return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
            except (tarfile.TarError, EOFError) as e:
                raise OryxError(f"{path}: {name} is not readable ({e}; corrupt? delete it to download again)") from None
        at += _AR_HEADER + size + (size % 2)  # members are padded to an even offset
    raise OryxError(f"{path} has no data.tar member: not a Debian binary package")


def unpacked(data: bytes, name: str) -> bytes:
    """A member's bytes, gunzipped when it ends in .gz or .dz (dictzip is gzip)."""
    if not name.endswith((".gz", ".dz")):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise OryxError(f"{name} is not readable gzip data ({e}; a corrupt package? delete it to download again)") from None


def decode(data: bytes, name: str) -> str:
    """Text of a member: gunzipped when it ends in .gz or .dz, UTF-8 (Latin-1 where it is not valid UTF-8:
    some old documentation files are)."""
    return text(unpacked(data, name))


def text(data: bytes) -> str:
    """UTF-8, or Latin-1 where it is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _TextOfHTML(HTMLParser):
    """Collects the visible text of a page: no script/style, no navigation bars (DocBook's navheader and
    navfooter), a line break at every block element."""

    BLOCKS: ClassVar[frozenset[str]] = frozenset({
        "p", "div", "br", "li", "dt", "dd", "tr", "pre", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "section", "title"})
    HIDDEN_CLASSES: ClassVar[frozenset[str]] = frozenset({"navheader", "navfooter"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # open elements: (tag, hides its content)

    def handle_starttag(self, tag, attrs):
        classes = set((dict(attrs).get("class") or "").split())
        hides = tag in ("script", "style", "head") or bool(classes & self.HIDDEN_CLASSES)
        if tag not in ("br", "img", "meta", "link", "hr", "input"):
            self.stack.append((tag, hides))
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):  # close up to the matching tag (tolerates bad nesting)
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not any(hides for _, hides in self.stack):
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v]+")
_MANY_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")


def html_text(page: str) -> str:
    """The visible text of an HTML page, runs of spaces collapsed, at most one blank line in a row."""
    parser = _TextOfHTML()
    parser.feed(page)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_LINES.sub("\n\n", text).strip()


_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64_number(field: str) -> int:
    """dictd's index numbers: base 64, most significant digit first ('B' = 1, 'BA' = 64)."""
    value = 0
    for c in field:
        value = value * 64 + _B64[c]
    return value


def dictd_entries(dictionary: bytes, index: str) -> list[tuple[str, str]]:
    """(headword, entry text) of a dictd dictionary, in the order of the .dict file, each entry once
    (the index lists an entry under every spelling of its headword); the dictionary's own
    '00-database-*' records are left out. dictionary: the .dict bytes (unzipped: `unpacked`); index: the
    .index text, lines of 'headword TAB offset TAB length' in dictd's base 64, offsets in bytes of the
    .dict (so it is sliced as bytes, each entry decoded on its own)."""
    data = dictionary
    spans: dict[tuple[int, int], str] = {}
    records: set[tuple[int, int]] = set()  # the database's own records (also indexed under other names)
    for line in index.splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        try:
            span = (_b64_number(fields[1]), _b64_number(fields[2]))
        except KeyError:
            raise OryxError(f"malformed dictd index line {line[:80]!r}") from None
        if fields[0].startswith(("00-database", "00database")):
            records.add(span)
        spans.setdefault(span, fields[0])
    return [(word, text(data[start:start + length]).strip())
            for (start, length), word in sorted(spans.items()) if (start, length) not in records]
