"""Which implementation of an operation runs: the `backend` setting of a model.

    naive   the float32 references (loops over time): slow, for tests and as ground truth
    torch   plain PyTorch: chunked recurrences, SDPA attention; runs on every device
    triton  GPU kernels (fla-core / the project's own Triton kernels); CUDA only
    auto    triton on CUDA when importable, else torch

Each op keeps a table `{backend: function}`; `pick` resolves `auto` and checks the choice can run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Literal

import torch

from oryx.errors import OryxError

Backend = Literal["auto", "torch", "naive", "triton"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "naive", "triton")


def pick(op: str, table: dict[str, Callable], backend: str, device: torch.device) -> Callable:
    """The implementation of `op` for `backend` on `device`.

    `table` maps concrete backends to functions; GPU entries may be loaders returning None when their
    package is not importable. `auto` falls back to `torch` (always present).
    """
    if backend not in BACKENDS:
        raise OryxError(f"unknown backend {backend!r} for {op}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cuda" and "triton" in table:
            fn = table["triton"]()
            if fn is not None:
                return fn
        return table["torch"]
    if backend == "triton":
        if device.type != "cuda":
            raise OryxError(f"backend 'triton' for {op} needs a CUDA device, got {device.type!r}")
        fn = table["triton"]() if "triton" in table else None
        if fn is None:
            raise OryxError(f"backend 'triton' for {op} is not available: install the 'gpu' extra (fla-core)")
        return fn
    return table[backend]


def for_long_calls(load: Callable[[], Callable | None], fallback: Callable, min_length: int) -> Callable:
    """A "triton" table entry for a GPU kernel that pays off on long calls only.

    Returns a cached loader: None when `load()` finds no kernel, else a function with the op's signature
    (queries first, [B, T, ...]) that runs `fallback` for calls of fewer than `min_length` positions
    (decoding steps: no chunk kernels, nothing compiled per step) and for float64 (reference precision,
    which the Triton kernels do not run), and the kernel otherwise.
    """

    @cache
    def loader() -> Callable | None:
        kernel = load()
        if kernel is None:
            return None

        def run(q: torch.Tensor, *args):
            short = q.shape[1] < min_length or q.dtype == torch.float64
            return (fallback if short else kernel)(q, *args)

        return run

    return loader
