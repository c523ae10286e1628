"""GPU kernel tests: every output buffer starts as NaN (fla's tests do the same).

Poisoning: `torch.empty`, `torch.empty_like` and `Tensor.new_empty` (what fla-core allocates outputs
with) return NaN-filled CUDA tensors during a test, and the caching allocator is handed NaN-filled
blocks before each test, so kernels that allocate through the allocator directly (FlexAttention's
compiled outputs) also start from NaN. An element a kernel forgets to write stays NaN and fails
`assert_close`.
"""

from __future__ import annotations

import pytest
import torch

_ORIGINALS = {"empty": torch.empty, "empty_like": torch.empty_like, "new_empty": torch.Tensor.new_empty}


def _poisoned(make):
    def wrapped(*args, **kwargs):
        out = make(*args, **kwargs)
        if out.is_cuda and out.is_floating_point():
            with torch.no_grad():
                out.fill_(float("nan"))
        return out
    return wrapped


def _poison_allocator() -> None:
    """Fill free blocks of both pools of the caching allocator with NaN (large pool: one 1 GiB block;
    small pool: 256 blocks of 512 KiB), then free them for the next allocations to reuse."""
    blocks = [torch.full((1 << 28,), float("nan"), device="cuda")]
    blocks += [torch.full((1 << 17,), float("nan"), device="cuda") for _ in range(256)]
    del blocks


@pytest.fixture(autouse=True)
def poison(monkeypatch, request):
    print(f"\n  {request.node.name}")  # names the relative errors the test prints (pytest -s)
    if not torch.cuda.is_available():
        yield
        return
    _poison_allocator()
    for owner, name in ((torch, "empty"), (torch, "empty_like"), (torch.Tensor, "new_empty")):
        monkeypatch.setattr(owner, name, _poisoned(_ORIGINALS[name]))
    yield
