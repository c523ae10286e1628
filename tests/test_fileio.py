"""The file helpers every stage writes and reads through (oryx/fileio.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oryx.errors import CheckpointError, OryxError
from oryx.fileio import read_json_object, read_yaml_mapping, remove_dir, replace_dir


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_replace_dir_puts_the_new_directory_in_place_and_leaves_nothing_aside(tmp_path, existing):
    final, tmp = tmp_path / "corpus", tmp_path / ".tmp-corpus"
    tmp.mkdir()
    (tmp / "a.bin").write_text("new")
    if existing:
        final.mkdir()
        (final / "a.bin").write_text("old")
        (final / "b.bin").write_text("old only")
    # what a process killed while deleting an old directory left behind, under the name a pid would give
    stale = tmp_path / f".corpus.old-{os.getpid()}"
    stale.mkdir()
    (stale / "x").write_text("stale")
    replace_dir(tmp, final, ".corpus.old-")
    assert _tree(final) == {"a.bin": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["corpus", stale.name])


def test_remove_dir_deletes_the_directory(tmp_path):
    path = tmp_path / "step-00000002"
    path.mkdir()
    (path / "model.safetensors").write_text("w")
    remove_dir(path, ".trash-step-00000002-")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, error, message", [
    pytest.param(None, OryxError, "cannot be read", id="missing"),
    pytest.param(b'{"a": 1', OryxError, "is not valid JSON (corrupt?)", id="torn"),
    pytest.param(b"\xff\xfe", OryxError, "is not valid JSON (corrupt?)", id="not-utf8"),
    pytest.param(b"[1, 2]", OryxError, "is not a JSON object", id="a-list"),
    pytest.param(b"{", CheckpointError, "is not valid JSON", id="error-type-kept"),
])
def test_read_json_object_names_the_file_and_the_problem(tmp_path, content, error, message):
    path = tmp_path / "state.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=r"state\.json") as info:
        read_json_object(path, error, hint="; delete it")
    assert message in str(info.value)
    # the hint (what to do about a corrupt file) only where the file is corrupt, not where it is unreadable
    assert str(info.value).endswith("; delete it") == (content is not None)


def test_read_json_object_returns_the_object(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"step": 3, "files": {"a": 1}}')
    assert read_json_object(path) == {"step": 3, "files": {"a": 1}}


@pytest.mark.parametrize("content, expected", [
    pytest.param(None, "preset {path} not found", id="missing"),
    pytest.param("a: [1\n", "preset {path} is not valid YAML", id="bad-yaml"),
    pytest.param("- 1\n- 2\n", "preset {path} must hold a mapping, got list", id="a-list"),
])
def test_read_yaml_mapping_errors(tmp_path, content, expected):
    path = tmp_path / "p.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(OryxError) as info:
        read_yaml_mapping(path, "preset")
    assert expected.format(path=path) in str(info.value)


@pytest.mark.parametrize("content, expected", [
    pytest.param("", {}, id="empty-file"),
    pytest.param("a: 1\nb: {c: [1, 2]}\n", {"a": 1, "b": {"c": [1, 2]}}, id="nested"),
])
def test_read_yaml_mapping_reads(tmp_path, content, expected):
    path = tmp_path / "p.yaml"
    path.write_text(content)
    assert read_yaml_mapping(path, "config file") == expected
