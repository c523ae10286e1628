"""Which device a command runs on: one rule for training, evaluation and the other commands."""

from __future__ import annotations

import torch

from oryx.errors import OryxError


def pick_device(choice: str | None = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' / None: CUDA when available, else the CPU; or 'cpu', 'cuda', 'cuda:N'.

    With `local_rank` (a torchrun process), a plain 'cuda' is that process's GPU, made current. CUDA asked
    for where there is none, or a name torch does not know, is an OryxError.
    """
    if choice is None or choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise OryxError(f"device {choice!r} asked for, but CUDA is not available (use cpu)")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise OryxError(f"unknown device {choice!r} (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and local_rank is not None:
        device = device if device.index is not None else torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device
