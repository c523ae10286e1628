"""File writing shared by every stage (model checkpoints, tokenizers, prepared corpora)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
