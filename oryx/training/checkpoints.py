"""Training checkpoints: complete or absent, never torn.

    <out_dir>/checkpoints/step-00000100/
        config.json, model.safetensors, tokenizer files   a model directory (oryx.pretrained)
        optimizer.safetensors                             AdamW state, keyed state/<param name>/<field>
        trainer_state.json                                step, RNG states, data position, learning-rate
                                                          schedule, param groups, MLflow run id
        run_config.yaml                                   the run config, as resolved (a resume compares it)
        manifest.json                                     size and sha256 of every other file: written last

A checkpoint is written into `checkpoints/.tmp-step-...` , every file is fsynced, the manifest is written
and fsynced, and only then is the directory renamed to `step-...` (an atomic rename on one file
system). A process killed at any moment leaves either a complete `step-...` or a `.tmp-...` that the next
run deletes. On resume, the newest checkpoint whose files match its manifest is used; one that does not
(damaged on disk) is skipped with a message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from oryx.errors import CheckpointError
from oryx.fileio import read_json_object, remove_dir, replace_dir, sha256

CHECKPOINTS_DIR = "checkpoints"
MANIFEST_FILE = "manifest.json"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
TMP_PREFIX, TRASH_PREFIX = ".tmp-", ".trash-"
STEP_DIR = re.compile(r"^step-(\d{8})$")
FORMAT = "oryx-checkpoint"


def step_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"


def _fsync(path: Path) -> None:
    """Flush a file's or directory's data to disk (a rename is only durable after its contents are)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(out_dir: str | Path, step: int, write_files: Callable[[Path], None]) -> Path:
    """`write_files(tmp_dir)` writes the files; then manifest, fsync, rename. Returns the final path."""
    final = step_dir(out_dir, step)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_files(tmp)
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    manifest = {
        "format": FORMAT,
        "step": step,
        "files": {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files},
    }
    for p in files:
        _fsync(p)
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    _fsync(tmp / MANIFEST_FILE)
    _fsync(tmp)
    # a damaged checkpoint of the same step (skipped on resume) is replaced
    replace_dir(tmp, final, _aside(final))
    _fsync(parent)
    return final


def verify(directory: str | Path) -> dict:
    """The manifest of a complete checkpoint; CheckpointError naming the directory and what is wrong."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} is incomplete: no {MANIFEST_FILE}")
    try:
        manifest = read_json_object(path, CheckpointError)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {directory} has a corrupt {MANIFEST_FILE}: {e}") from None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)
        for e in files.values()
    ):
        raise CheckpointError(f"checkpoint {directory} has a corrupt {MANIFEST_FILE}: no files with bytes and sha256")
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise CheckpointError(f"checkpoint {directory} is corrupt: {name} has {file.stat().st_size} bytes, "
                                  f"the manifest says {expected['bytes']}")
        if sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {directory} is corrupt: {name} does not match its sha256")
    return manifest


def is_checkpoint_dir(path: Path) -> bool:
    """Whether `path` is a `checkpoints/step-...` folder of a run (which must verify to be loaded)."""
    return path.parent.name == CHECKPOINTS_DIR and STEP_DIR.match(path.name) is not None


def checkpoints(out_dir: str | Path) -> list[Path]:
    """The `step-...` directories of a run, newest first (not verified)."""
    folder = Path(out_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest checkpoint that verifies; damaged ones are skipped with a message on stderr."""
    for path in checkpoints(out_dir):
        try:
            verify(path)
            return path
        except CheckpointError as e:
            print(f"oryx: skipping {e}", file=sys.stderr, flush=True)
    return None


def prune(out_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (each renamed away first, so none is ever half
    deleted under its real name)."""
    for path in checkpoints(out_dir)[keep:]:
        remove_dir(path, _aside(path))


def clean_partial(out_dir: str | Path) -> None:
    """Delete what killed runs left behind: unfinished `.tmp-...` and half-deleted `.trash-...` folders."""
    folder = Path(out_dir) / CHECKPOINTS_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(p, ignore_errors=True)


def _aside(path: Path) -> str:
    """The name prefix of the folder a checkpoint goes into while it is deleted: one `checkpoints` skips
    and `clean_partial` removes."""
    return f"{TRASH_PREFIX}{path.name}-"


# ---- optimizer state <-> flat tensors --------------------------------------------------------------------
def flatten_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """A (full, FQN-keyed) optimizer state dict -> (tensors 'state/<param>/<field>', JSON-able rest)."""
    tensors, scalars = {}, {}
    for param, fields in state["state"].items():
        for field, value in fields.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{param}/{field}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param}/{field}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `flatten_optimizer_state`."""
    state: dict[str, dict] = {}
    for key, value in tensors.items():
        _, rest = key.split("/", 1)
        param, field = rest.rsplit("/", 1)
        state.setdefault(param, {})[field] = value
    for key, value in meta.get("scalars", {}).items():
        param, field = key.rsplit("/", 1)
        state.setdefault(param, {})[field] = value
    return {"state": state, "param_groups": meta["param_groups"]}
