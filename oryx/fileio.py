"""File writing shared by every stage (model checkpoints, tokenizers, prepared corpora)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from oryx.errors import OryxError


def write_atomic(path: Path, write) -> None:
    """Call write(tmp_path), then rename over `path`: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def replace_dir(tmp: Path, final: Path, aside_prefix: str) -> None:
    """Rename the finished directory `tmp` to `final`. A directory already at `final` is first moved aside
    (`_move_aside`) and deleted after: a reader sees the old directory or the new one, whole, never a mix
    or a half-deleted one."""
    if not final.exists():
        os.replace(tmp, final)
        return
    aside = _move_aside(final, aside_prefix)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def remove_dir(path: Path, aside_prefix: str) -> None:
    """Delete the directory `path`, moved aside first (`_move_aside`) so that it is never half deleted
    under its real name."""
    shutil.rmtree(_move_aside(path, aside_prefix), ignore_errors=True)


def _move_aside(path: Path, aside_prefix: str) -> Path:
    """Move `path` into a new folder `<aside_prefix><random>` beside it (a name its readers skip; unique,
    so one a killed process left behind is never in the way) and return that folder."""
    aside = Path(tempfile.mkdtemp(prefix=aside_prefix, dir=path.parent))
    os.replace(path, aside / path.name)
    return aside


def umask() -> int:
    """The process's file mode creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def utc_timestamp() -> str:
    """The current UTC time, ISO 8601 to the second: what manifests and result files record."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sha256(path: Path) -> str:
    """Hex SHA-256 digest of a file, read in blocks (checkpoint manifests, downloaded archives)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: Path, error: type[OryxError] = OryxError, hint: str = "") -> dict:
    """The JSON object in `path`; `error` naming the file when it cannot be read, or is not JSON or not
    an object (a torn write, someone's edit): then `hint` is appended, what to do about a corrupt file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise error(f"{path} cannot be read: {e.strerror or e}") from None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is not valid JSON (corrupt?): {e}{hint}") from None
    if not isinstance(value, dict):
        raise error(f"{path} is not a JSON object (corrupt?){hint}")
    return value


def read_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping in the YAML file `path` ({} for an empty file); OryxError naming `what` (e.g. "config
    file", "preset") and the file when it is missing, unreadable, not YAML or not a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise OryxError(f"{what} {path} not found")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise OryxError(f"{what} {path} is not valid YAML: {e}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise OryxError(f"{what} {path} must hold a mapping, got {type(tree).__name__}")
    return tree
