"""Loading a checkpoint for evaluation: device and dtype choice, and what it is (for the logs).

    loaded = load_checkpoint("runs/out/smoke", device="auto", dtype="auto")
    loaded.model, loaded.tokenizer, loaded.directory, loaded.train_run_id
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from oryx.data.tokenizers import Tokenizer
from oryx.device import pick_device
from oryx.errors import OryxError
from oryx.fileio import read_json_object
from oryx.model import OryxForCausalLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
DTYPE_NAMES = ("auto", *DTYPES)


@dataclass
class Loaded:
    """A checkpoint ready to evaluate: the model (eval mode), its tokenizer (None for a model trained
    on a synthetic task), the model directory it came from, and the MLflow run that trained it."""

    model: OryxForCausalLM
    tokenizer: Tokenizer | None
    directory: Path
    train_run_id: str | None


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA, float32 elsewhere; or one of DTYPES by name."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise OryxError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {dtype!r}")
    return DTYPES[dtype]


def load_checkpoint(path: str | Path, device: str | None = "auto", dtype: str = "auto") -> Loaded:
    """A model directory or training out_dir (its newest complete checkpoint), on `device` in `dtype`."""
    from oryx.pretrained import load_model_dir, resolve_model_dir

    where = pick_device(device)
    directory = resolve_model_dir(path)
    model, tokenizer = load_model_dir(directory, device=where, dtype=pick_dtype(dtype, where))
    return Loaded(model, tokenizer, directory, _train_run_id(directory))


def _train_run_id(directory: Path) -> str | None:
    """The MLflow run id a training checkpoint records, None for a plain model directory."""
    from oryx.training.checkpoints import STATE_FILE

    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = read_json_object(path)
    except OryxError:   # unreadable or not an object: no run to link (loading the weights says the rest)
        return None
    run_id = state.get("mlflow_run_id") or state.get("run_id")
    return str(run_id) if run_id else None
