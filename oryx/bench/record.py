"""What every benchmark result records: machine, date, versions, the exact command; and its output files."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from oryx.fileio import utc_timestamp, write_atomic

RESULTS_DIR = Path("benchmarks") / "results"


def environment() -> dict:
    """Machine, date and versions of the run, for the header of a result file."""
    import torch

    env = {
        "date": utc_timestamp(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        pass
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        env["fla_core"] = importlib.metadata.version("fla-core")
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(name: str, rows: list[dict], extra: dict | None = None, out_dir: Path | None = None) -> Path:
    """benchmarks/results/<name>.json = {environment..., **extra, rows: [...]}; returns the path."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    text = json.dumps({**environment(), **(extra or {}), "rows": rows}, indent=2) + "\n"
    write_atomic(path, lambda p: p.write_text(text))   # a resumed benchmark reads it back
    return path
