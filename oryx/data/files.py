"""Local text files: expanding the paths and globs a user gives, reading them as UTF-8."""

from __future__ import annotations

import glob
from pathlib import Path

from oryx.errors import OryxError


def expand(patterns: list[str | Path]) -> list[Path]:
    """Paths, directories (every file below, recursively) and globs -> sorted, de-duplicated files.

    A pattern that matches nothing is an OryxError naming it (a typo must not silently drop data).
    """
    if not patterns:
        raise OryxError("no input files given")
    found: dict[Path, None] = {}
    for pattern in patterns:
        text = str(Path(pattern).expanduser())
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True)) if glob.has_magic(text) else [Path(text)]
        files = [f for m in matches for f in ([m] if m.is_file() else sorted(p for p in m.rglob("*") if p.is_file()))]
        if not files:
            raise OryxError(f"input {str(pattern)!r} matches no file")
        found.update(dict.fromkeys(files))
    return list(found)


def read_text(path: Path) -> str:
    """The UTF-8 text of a file; OryxError naming the file when it is missing or not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OryxError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise OryxError(f"cannot read {path}: {e.strerror or e}") from None
