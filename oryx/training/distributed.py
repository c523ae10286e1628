"""Processes: one, or several started by torchrun (DDP, or FSDP2 for large models).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK; `Dist.from_env()` joins the process group (gloo on CPU,
NCCL on CUDA). The global batch is the same for any number of processes: every process draws the whole
batch (and its mode mask) from the same seed and keeps its own rows.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_type: str) -> Dist:
        """The process's place in the group; joins the group when torchrun started several processes."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of a tensor over processes (in place; returned for chaining)."""
        if self.world_size > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def rows(self, batch_size: int) -> slice:
        """This process's rows of the global batch."""
        per = batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def wrap(model: nn.Module, strategy: str, d: Dist, device: torch.device) -> nn.Module:
    """The model as trained: itself (one process), DDP, or FSDP2-sharded (blocks, then the root).

    DDP looks for unused parameters when a layer owns two mixers: a micro-batch that runs one mode only
    skips the other read, whose parameters then get no gradient.
    """
    if d.world_size == 1:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:
            fully_shard(block)
        fully_shard(model)
        return model
    two_mixers = any(len(block.mixer.modes) == 2 for block in model.layers)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=two_mixers)


def no_sync(model: nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step (gradient accumulation)."""
    if last:
        return nullcontext()
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        return _FSDPNoSync(model)
    return nullcontext()


class _FSDPNoSync:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.model.set_requires_gradient_sync(False)

    def __exit__(self, *exc):
        self.model.set_requires_gradient_sync(True)
