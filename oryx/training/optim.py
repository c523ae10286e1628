"""AdamW with weight decay on matrices only, and the warmup + cosine learning rate."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from oryx.training.config import OptimSection


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices (embeddings, projections, conv kernels: 2-D and up) decay; vectors (norm
    weights, biases, A_log, D, dt_bias) do not. A parameter whose gradient is None in a step (the read
    of the mode no position used) is skipped by AdamW entirely, decay included."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW over `model`'s parameters (call after any sharding: FSDP2 parameters are DTensors)."""
    return torch.optim.AdamW(
        param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps
    )


def lr_at(step: int, optim: OptimSection, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (1-based): linear warmup over warmup_steps to `lr`, then
    a cosine down to lr * min_lr_ratio at max_steps. A pure function of the step, so resuming needs
    only the step count."""
    if optim.warmup_steps and step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
    floor = optim.min_lr_ratio
    return optim.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
