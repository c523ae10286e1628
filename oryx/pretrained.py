"""Model directories with their tokenizer: what training writes and evaluation loads.

    save_pretrained(model, tokenizer, "runs/out/my-model")      # config.json, model.safetensors, tokenizer
    model, tokenizer = load_pretrained("runs/out/my-run")       # a model dir, or a training out_dir
                                                                # (its newest complete checkpoint)

A model trained on a synthetic task has no tokenizer (its ids are the task's): `tokenizer` is None then.
Every problem (missing path, no complete checkpoint, a damaged file) is a CheckpointError naming the path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from oryx.data.tokenizers import HF_FILE, MARKER_FILE, Tokenizer, load_tokenizer
from oryx.errors import CheckpointError, OryxError
from oryx.model import OryxForCausalLM
from oryx.model.checkpoint import CONFIG_FILE
from oryx.training.checkpoints import (
    CHECKPOINTS_DIR,
    MANIFEST_FILE,
    is_checkpoint_dir,
    latest_checkpoint,
    verify,
)


def save_pretrained(model: OryxForCausalLM, tokenizer: Tokenizer | None, directory: str | Path) -> Path:
    """Write the model (config.json, model.safetensors) and, when given, its tokenizer's files."""
    directory = Path(directory)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save(directory)
    return directory


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory for `path`: itself when it holds config.json (checked against its manifest when
    it is a training checkpoint), else the newest complete checkpoint of a training out_dir."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"no model at {path}: no such file or directory")
    if (path / CONFIG_FILE).is_file() or is_checkpoint_dir(path):
        if (path / MANIFEST_FILE).is_file() or is_checkpoint_dir(path):
            verify(path)
        return path
    if (path / CHECKPOINTS_DIR).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"training output {path} has no complete checkpoint yet")
        return latest
    raise CheckpointError(
        f"{path} is neither a model directory ({CONFIG_FILE}) nor a training output directory ({CHECKPOINTS_DIR}/)"
    )


def load_pretrained(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[OryxForCausalLM, Tokenizer | None]:
    """(model in eval mode, tokenizer or None) from a model directory or a training out_dir."""
    return load_model_dir(resolve_model_dir(path), device, dtype)


def load_model_dir(
    directory: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[OryxForCausalLM, Tokenizer | None]:
    """`load_pretrained` for a directory `resolve_model_dir` already returned (its files already hashed
    against the manifest: reading a large checkpoint twice is what this saves)."""
    model = OryxForCausalLM.from_pretrained(directory, device=device, dtype=dtype).eval()
    if not ((directory / MARKER_FILE).is_file() or (directory / HF_FILE).is_file()):
        return model, None
    try:
        return model, load_tokenizer(directory)
    except OryxError as e:
        raise CheckpointError(f"checkpoint {directory}: {e}") from None
