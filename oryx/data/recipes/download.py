"""Downloads from the package registries (pip for PyPI, `apt-get download` for Debian), cached.

    path = download([sys.executable, "-m", "pip", "download", ..., "--dest", "."], directory, "pkg-1.0.tar.gz")

The command runs inside a fresh temporary directory under `directory` and must leave exactly one file
matching `pattern` there; that file is renamed into `directory` (same file system: a reader never sees a
partial download). A failure that means the registry could not be reached is a RegistryUnreachable (tests
skip on it), any other an OryxError with the command's last lines.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from oryx.errors import OryxError

# pip and apt output that means the registry could not be reached (as opposed to any other failure).
_NETWORK = re.compile(r"NewConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|"
                      r"Temporary failure in name resolution|Temporary failure resolving|Could not resolve|"
                      r"Network is unreachable|Connection refused|Could not fetch URL|ProxyError|SSLError|"
                      r"Unable to connect|Connection failed|Connection timed out", re.IGNORECASE)


class RegistryUnreachable(OryxError):
    """The package client could not reach its registry."""


def download(command: list[str], directory: Path, pattern: str, what: str, timeout: float = 900) -> Path:
    """Run `command` in a temporary directory under `directory`; move the one file matching `pattern`
    (a glob) it downloaded into `directory` and return its new path. `what` names the download in errors."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        try:
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"downloading {what} did not finish in {timeout:.0f} s") from None
        except FileNotFoundError:
            raise OryxError(f"cannot download {what}: {command[0]!r} is not installed") from None
        found = sorted(Path(tmp).glob(pattern))
        if result.returncode != 0 or len(found) != 1:
            output = (result.stdout + result.stderr).strip()
            tail = " | ".join(output.splitlines()[-3:]) or f"{len(found)} file(s) matching {pattern}"
            error = RegistryUnreachable if _NETWORK.search(output) else OryxError
            raise error(f"could not download {what} (`{' '.join(command[:3])} ...`, exit {result.returncode}): {tail}")
        target = directory / found[0].name
        found[0].replace(target)
    return target
