"""Model directories: `config.json` (the OryxConfig) and `model.safetensors` (weights). No pickle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from oryx.errors import CheckpointError, format_validation_error
from oryx.fileio import read_json_object, write_atomic
from oryx.model.config import OryxConfig

if TYPE_CHECKING:
    from oryx.model.modeling import OryxForCausalLM

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save(model: OryxForCausalLM, directory: str | Path) -> Path:
    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(directory / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    write_atomic(directory / CONFIG_FILE, lambda p: p.write_text(model.config.model_dump_json(indent=2)))
    return directory


def load_config(directory: str | Path) -> OryxConfig:
    """The OryxConfig of a model directory."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(f"no checkpoint at {directory}: not a directory")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {CONFIG_FILE}")
    tree = read_json_object(path, CheckpointError)
    try:
        return OryxConfig.model_validate(tree)
    except ValidationError as e:
        raise CheckpointError(f"{path} is not a valid Oryx config: {format_validation_error(e, first_only=True)}") from None


def load(cls: type[OryxForCausalLM], directory, device, dtype) -> OryxForCausalLM:
    config = load_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is corrupt or truncated: {e}") from None
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{name}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if keys]
        raise CheckpointError(f"{weights} does not match its config.json ({'; '.join(parts)})")
    model.load_state_dict(state, assign=True)
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
