"""The `english` recipe on a packaged stand-in of its downloads (tests/data/english_fixture.py): reading
.deb files, HTML and dictd text, the apt-get download (a fake apt-get), deduplication, bytes per split,
and `oryx data pack` / `unpack`. Offline: nothing here reaches a registry."""

from __future__ import annotations

import json
import os
import random
import stat

import numpy as np
import pytest

from oryx.cli.main import main
from oryx.data.corpus import TokenCorpus
from oryx.data.pack import pack, unpack
from oryx.data.prepare import prepare
from oryx.data.recipes import debian
from oryx.data.recipes.download import RegistryUnreachable
from oryx.data.recipes.english import SOURCE_NAMES, SOURCES, EnglishRecipe
from oryx.errors import OryxError
from tests.data.english_fixture import DUPLICATE, build_deb, dictd, tar_bytes, write_english_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """ORYX_CACHE_DIR holding the stand-in downloads of every source."""
    monkeypatch.setenv("ORYX_CACHE_DIR", str(tmp_path / "cache"))
    return write_english_cache(tmp_path / "cache")


@pytest.fixture
def corpus(tmp_path, cache):
    return TokenCorpus.open(prepare("english", tmp_path / "corpus", "bpe:300", val_fraction=0.2, seed=0))


# ---- reading packages -------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["xz", "gz", "bz2"])
def test_deb_members_by_glob(tmp_path, compression):
    files = {"./usr/share/doc/a/x.txt": b"x", "./usr/share/doc/a/sub/y.txt": b"y", "./usr/share/doc/a/z.html": b"z"}
    deb = build_deb(tmp_path / "a_1_all.deb", files, compression)
    found = dict(debian.deb_members(deb, ["./usr/share/doc/a/*.txt"], exclude=("*/sub/*",)))
    assert found == {"./usr/share/doc/a/x.txt": b"x"}


@pytest.mark.parametrize("content, match", [
    pytest.param(b"not an archive", "not a Debian package", id="no-ar-header"),
    pytest.param(b"!<arch>\n", "no data.tar member", id="no-data-member"),
])
def test_a_bad_deb_is_a_named_error(tmp_path, content, match):
    (tmp_path / "bad.deb").write_bytes(content)
    with pytest.raises(OryxError, match=match):
        list(debian.deb_members(tmp_path / "bad.deb", ["*"]))


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_a_truncated_deb_is_a_named_error(tmp_path, compression):
    files = {f"./usr/share/doc/a/{i}.txt": random.Random(i).randbytes(20_000) for i in range(4)}
    whole = build_deb(tmp_path / "a_1_all.deb", files, compression).read_bytes()
    (tmp_path / "cut.deb").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(OryxError, match=r"damaged|not readable"):
        list(debian.deb_members(tmp_path / "cut.deb", ["*"]))


def test_a_bad_gzip_member_is_a_named_error():
    with pytest.raises(OryxError, match="not readable gzip"):
        debian.decode(b"\x1f\x8b not really gzip", "x.txt.gz")


def test_dictd_slices_bytes_so_latin1_entries_keep_their_offsets():
    dictionary = "caf\xe9 one\n".encode("latin-1") + b"second entry\n"
    index = "cafe\tA\tJ\nsecond\tJ\tM\n"  # base 64: A=0, J=9, M=12
    assert debian.dictd_entries(dictionary, index) == [("cafe", "caf\xe9 one"), ("second", "second entry")]


def test_html_text_keeps_what_a_reader_sees():
    page = ('<html><head><title>T</title><script>var x = 1;</script></head><body><div class="navheader">'
            '<a href="p.html">Prev</a></div><h1>Heading</h1><p>One &amp; <b>two</b>.</p><p>Three</p>'
            '<div class="navfooter">Home</div></body></html>')
    assert debian.html_text(page) == "Heading\n\nOne & two.\n\nThree"


def test_dictd_entries_in_file_order_once_each():
    import gzip

    rng = random.Random(0)
    words = ["apple", "banana", "cherry"]
    dz, index = dictd(rng, words)
    entries = debian.dictd_entries(gzip.decompress(dz), index.decode())
    assert [w.lower().rstrip("x") for w, _ in entries] == words  # the database record is left out
    assert all(text.startswith(word) and text.endswith("naïve") for (_, text), word in zip(entries, words))


# ---- fetching with apt-get (a fake one on PATH) ----------------------------------------------------------
def _fake_apt(tmp_path, monkeypatch, script: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\n" + script)
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_fetch_deb_downloads_once_then_reads_the_cache(tmp_path, monkeypatch):
    source = build_deb(tmp_path / "fixture.deb", {"./usr/share/doc/p/a.txt": b"a"})
    log = tmp_path / "calls"
    _fake_apt(tmp_path, monkeypatch, f'echo "$@" >> {log}\ncp {source} "./$2_2.0-1_all.deb"\n')
    first = debian.fetch_deb("p", tmp_path / "cache")
    again = debian.fetch_deb("p", tmp_path / "cache")
    assert first == again == tmp_path / "cache" / "p_2.0-1_all.deb"
    assert log.read_text() == "download p\n"  # one apt-get call: the second read the cache
    assert dict(debian.deb_members(first, ["*"])) == {"./usr/share/doc/p/a.txt": b"a"}
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".download-")]


@pytest.mark.parametrize("output, error", [
    pytest.param("E: Failed to fetch http://deb.example/p.deb  Temporary failure resolving 'deb.example'",
                 RegistryUnreachable, id="network"),
    pytest.param("E: Can't select candidate version from package p as it has no candidate", OryxError, id="no-package"),
])
def test_fetch_deb_failures(tmp_path, monkeypatch, output, error):
    _fake_apt(tmp_path, monkeypatch, f'echo "{output}" >&2\nexit 100\n')
    with pytest.raises(error, match="could not download Debian package p") as info:
        debian.fetch_deb("p", tmp_path / "cache")
    assert error is RegistryUnreachable or not isinstance(info.value, RegistryUnreachable)
    assert not list((tmp_path / "cache").glob("*.deb"))


# ---- the recipe ------------------------------------------------------------------------------------------
def test_every_source_gives_documents(cache):
    docs = EnglishRecipe().documents()
    by_source = {name: [d for d in docs if d.name.startswith(f"{name}:")] for name in SOURCE_NAMES}
    assert all(by_source.values()), {k: len(v) for k, v in by_source.items()}
    assert [d.name for d in by_source["linux"]] == ["linux:notes.txt.gz", *[f"linux:sub/doc{i}.rst.gz" for i in range(3)]]
    assert "python:index.html" not in {d.name for d in docs}  # not matched by the source's globs
    page = by_source["postgresql"][0].read()
    assert page.startswith("Chapter 0\n\n") and "Prev" not in page and "Home" not in page and "&amp;" not in page
    assert [d.name for d in by_source["shakespeare"]] == ["shakespeare:Work 0", "shakespeare:Work 1", "shakespeare:Work 2"]


@pytest.mark.parametrize("options, match", [
    pytest.param({"sources": ["linux", "klingon"]}, "unknown source.*klingon", id="unknown-source"),
    pytest.param({"sources": []}, "at least 1", id="no-source"),
    pytest.param({"colour": "red"}, "takes no option 'colour'", id="unknown-option"),
])
def test_bad_options_are_named(tmp_path, cache, options, match):
    with pytest.raises((OryxError, ValueError), match=match):
        prepare("english", tmp_path / "c", **options)


def test_prepared_corpus_dedups_and_counts_bytes(corpus, cache):
    m = corpus.manifest
    docs = corpus.documents()
    names = [d["name"] for d in docs]
    assert m.duplicates == 1 and DUPLICATE not in names and "python:page0.rst.txt" in names
    expected = {d.name: d.read() for d in EnglishRecipe().documents() if d.name != DUPLICATE}
    assert set(names) == set(expected)
    for split in ("train", "val"):
        texts = [expected[d["name"]] for d in docs if d["split"] == split]
        assert m.splits[split].bytes == sum(len(t.encode()) for t in texts)
    for d in docs[:5]:  # a document's tokens decode to its text
        ids = corpus.tokens(d["split"])[d["start"]:d["start"] + d["tokens"]]
        assert corpus.tokenizer.decode(ids) == expected[d["name"]]
    assert set(m.source) == set(SOURCE_NAMES)
    assert m.source["python"]["package"] == SOURCES["python"].package and len(m.source["python"]["sha256"]) == 64
    assert m.tokenizer.name == "bpe" and 1_000 < m.splits["train"].tokens < 20_000  # toy size


def test_max_documents_and_sources(tmp_path, cache):
    out = prepare("english", tmp_path / "c", val_fraction=0.5, sources=["perl", "gcide"], max_documents=2)
    names = [d["name"] for d in TokenCorpus.open(out).documents()]
    assert sorted(n.split(":")[0] for n in names) == ["gcide", "perl", "perl"]  # the toy dictionary fits one document


# ---- pack / unpack -------------------------------------------------------------------------------------
def test_pack_unpack_round_trip(tmp_path, corpus):
    archive = pack(corpus.directory, tmp_path / "c.tar.xz", level=1)
    restored = TokenCorpus.open(unpack(archive, tmp_path / "restored"))
    assert restored.manifest == corpus.manifest
    for split in ("train", "val"):
        assert np.array_equal(restored.tokens(split), corpus.tokens(split))
    with pytest.raises(OryxError, match="already exists"):
        unpack(archive, tmp_path / "restored")
    assert unpack(archive, tmp_path / "restored", overwrite=True) == tmp_path / "restored"


def _garbage(path):
    path.write_bytes(b"garbage")
    return path


def _archive_with(tmp_path, files: dict[str, bytes]):
    path = tmp_path / "bad.tar.xz"
    path.write_bytes(tar_bytes(files, "xz"))
    return path


@pytest.mark.parametrize("make, match", [
    pytest.param(lambda p: _garbage(p / "bad.tar.xz"), "not a readable", id="not-xz"),
    pytest.param(lambda p: _archive_with(p, {"../evil": b"x"}), "expected plain files", id="path-outside"),
    pytest.param(lambda p: _archive_with(p, {"manifest.json": json.dumps({"format": "oryx-corpus"}).encode()}),
                 "not a corpus manifest", id="not-a-corpus"),
    pytest.param(lambda p: p / "missing.tar.xz", "no corpus archive", id="missing"),
])
def test_unpack_refuses_a_bad_archive(tmp_path, make, match):
    with pytest.raises(OryxError, match=match):
        unpack(make(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_cli_prepare_pack_unpack(tmp_path, cache, capsys):
    assert main(["data", "prepare", "english", "--out", str(tmp_path / "c"), "--source", "python", "--source",
                 "jargon", "--max-documents", "3", "--val-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "english" in out and "bytes" in out and "duplicate" not in out  # (rich wraps lines to the terminal)
    assert main(["data", "pack", str(tmp_path / "c"), "--out", str(tmp_path / "c.tar.xz"), "--level", "1"]) == 0
    assert "MiB" in capsys.readouterr().out
    assert main(["data", "unpack", str(tmp_path / "c.tar.xz"), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "train.bin").read_bytes() == (tmp_path / "c" / "train.bin").read_bytes()
    assert main(["data", "pack", str(tmp_path / "c"), "--out", str(tmp_path / "c.zip")]) == 2
    assert "must end in .tar.xz" in capsys.readouterr().err
