"""fla-core, the GPU kernels of the linear mixers: importing it, and running it safely on Hopper.

fla-core is optional (the `gpu` extra): `available()` says whether it imports; nothing here imports it
at module load, so the CPU install never needs Triton.

The Hopper guard (fla-core 0.6.0, its issue #640). On Hopper GPUs with 3.4.0 <= Triton < 3.7.1,
`fla.ops.common.chunk_o.chunk_bwd_dqkwg` (the dq/dk/dg kernel of the backward of both
`chunk_simple_gla` and `chunk_gated_delta_rule`) raises instead of running, because Triton miscompiles
it there. The bisection in #640 pins the miscompile to one key tile width: BK = 64 gives wrong dk and
dg; BK = 32 and BK = 128 are right (on Hopper fla picks BK = min(next_pow2(K), 128)). The H200 image
has Triton 3.6, where the guard fires, and a newer Triton cannot be installed beside its PyTorch.

What we do, knowingly:
  1. `safe_key_width(K)`: the width the key dimension is zero-padded to before calling fla, so that the
     tile is 128, never 64 (padding q, k and the state's K rows with zeros is exact for both
     recurrences: a zero key column never writes the state, a zero query column never reads it).
  2. `install_hopper_backend()`: registers, through fla's own backend registry (`fla.backends.register`,
     the hook its TileLang fallback uses), a `chunk_bwd_dqkwg` that runs fla's unchanged Triton kernel
     without the version guard, and whose verifier accepts a call only when its tile is 128;
     any other call falls through to fla's default, which raises the #640 error as before.
  3. tests/gpu checks every output and gradient (states included) of both ops against the float64
     CPU reference on the H200; benchmarks/results/gpu-tests-h200.txt records what has run so far
     (mamba2 in float32 and bf16, gdn in bf16, K=64 padded and K=128: all within bounds; the rest of
     the module is still to be run there, see its status).
Where the guard does not fire (another GPU, Triton >= 3.7.1, or tilelang installed, which fla prefers),
nothing is padded and fla runs as shipped.
"""

from __future__ import annotations

import importlib.util
import re
import types
from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F

# fla's widest key tile on Hopper; the #640 bisection found tiles of 32 and 128 correct, 64 wrong
SAFE_TILE = 128


@cache
def available() -> bool:
    """fla-core and Triton import, and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("triton", "fla"))


@cache
def guard_active() -> bool:
    """True on a Hopper GPU with 3.4.0 <= Triton < 3.7.1 (fla-core's #640 range) and no tilelang."""
    if not available():
        return False
    import triton

    hopper = torch.cuda.get_device_capability()[0] == 9
    affected = (3, 4, 0) <= _version(triton.__version__) < (3, 7, 1)
    return hopper and affected and importlib.util.find_spec("tilelang") is None


def _version(text: str) -> tuple[int, ...]:
    """'3.6.0+git1234' -> (3, 6, 0)."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def key_tile(K: int) -> int:
    """The key tile BK fla-core 0.6.0 picks for `chunk_bwd_dqkwg` on Hopper."""
    return min(max(1 << (K - 1).bit_length(), 16), 128)


def safe_key_width(K: int) -> int:
    """K, or 128 where the guard is active and K's tile is not 128 (K itself when fla runs unguarded).

    Only the 128 tile is used, never 32 (also found correct in #640): one tile is one set of compiled
    kernels to check on the device. Narrow keys (the tiny presets, K = 16) pay 128 / K in the
    key-width products; the presets from 125m on have K = 128 and pay nothing.
    """
    if not guard_active() or key_tile(K) == SAFE_TILE:
        return K
    return max(K, SAFE_TILE)


def pad_keys(
    q: torch.Tensor, k: torch.Tensor, state: torch.Tensor | None, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Zero-pad q, k [B, T, H, K] and state [B, H, K, V] to key width `width` (exact, see the module)."""
    extra = width - q.shape[-1]
    if extra == 0:
        return q, k, state
    q, k = F.pad(q, (0, extra)), F.pad(k, (0, extra))
    return q, k, None if state is None else F.pad(state, (0, 0, 0, extra))


@cache
def install_hopper_backend() -> bool:
    """Register the guard-free `chunk_bwd_dqkwg` for safe tiles (once); True when it was needed."""
    if not guard_active():
        return False
    import inspect

    from fla.backends import BaseBackend, register
    from fla.ops.common import chunk_o

    guarded = inspect.unwrap(chunk_o.chunk_bwd_dqkwg)
    # fla's own function, reading its flags from a copy of its module globals in which the Triton
    # version check passes: the module itself is left untouched
    unguarded = types.FunctionType(
        guarded.__code__, {**guarded.__globals__, "TRITON_ABOVE_3_7_1": True}, guarded.__name__,
        guarded.__defaults__, guarded.__closure__,
    )
    unguarded.__kwdefaults__ = guarded.__kwdefaults__

    @register("common")
    class OryxSafeTileBackend(BaseBackend):
        backend_type = "oryx_safe_tile"
        priority = 10  # after fla's own backends (tilelang), which fix #640 themselves

        def chunk_bwd_dqkwg_verifier(self, q, k, *args, **kwargs) -> tuple[bool, str | None]:
            tile = key_tile(k.shape[-1])
            if tile != SAFE_TILE:
                return False, f"key tile {tile} is not the one checked on Hopper with Triton < 3.7.1 (fla #640)"
            return True, None

        def chunk_bwd_dqkwg(self, *args, **kwargs):
            return unguarded(*args, **kwargs)

    return True


def loader(kernel: Callable) -> Callable[[], Callable | None]:
    """A "triton" table loader for `kernel`: None without fla-core or CUDA; else `kernel`, with the
    Hopper backend registered first where the guard applies."""

    def load() -> Callable | None:
        if not available():
            return None
        install_hopper_backend()
        return kernel

    return load


def run_padded(
    kernel: Callable,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gates: tuple[torch.Tensor, ...],
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Call an fla chunk kernel `kernel(q, k, v, *gates, scale=, initial_state=, output_final_state=)`
    with the key width made safe (`safe_key_width`), and undo the padding.

    q, k [B, T, H, K]; v [B, T, H, V]; gates [B, T, H] each; initial_state [B, H, K, V] ->
    o [B, T, H, V] in v's dtype, final state [B, H, K, V] float32 (or None).
    """
    K = q.shape[-1]
    q, k, state = pad_keys(q, k, initial_state, safe_key_width(K))
    o, final = kernel(
        q, k, v, *gates, scale=scale, initial_state=None if state is None else state.float(),
        output_final_state=output_final_state,
    )
    return o.to(v.dtype), (final[:, :, :K].float() if output_final_state else None)
