"""Rotary embedding and the gated RMSNorm: their definitions, written out independently here."""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch
import torch.nn.functional as F

from oryx.ops import causal_conv1d, gated_rms_norm, rotary
from tests.utils import assert_close


def _rotate_by_loops(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Pairs (x_i, x_{i+D/2}) rotated by position * theta^(-2i/D), one pair at a time."""
    B, T, _, D = x.shape
    pos = positions.expand(B, T)
    out = torch.empty_like(x)
    for i in range(D // 2):
        angle = pos.double() * theta ** (-2 * i / D)                        # [B, T]
        c, s = angle.cos()[..., None], angle.sin()[..., None]
        a, b = x[..., i], x[..., i + D // 2]
        out[..., i], out[..., i + D // 2] = a * c - b * s, b * c + a * s
    return out


@pytest.mark.parametrize("backend", ["torch", "naive"])
@pytest.mark.parametrize("per_row", [False, True], ids=["positions-T", "positions-BT"])
def test_rotary_matches_pairwise_rotation(backend, per_row):
    B, T, H, D = 2, 9, 3, 8
    x = torch.randn(B, T, H, D, dtype=torch.float64)
    positions = torch.randint(0, 5000, (B, T)) if per_row else torch.arange(40, 40 + T)
    assert_close("rotated", _rotate_by_loops(x, positions, 1e4), rotary(x, positions, 1e4, backend), 1e-12)


def test_rotary_preserves_norms_and_relative_angles():
    """Rotation keeps each pair's length, and q·k depends on the position difference only."""
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)
    def score(pq, pk):
        return float((rotary(q, torch.tensor([pq]), 1e4) * rotary(k, torch.tensor([pk]), 1e4)).sum())
    assert math.isclose(score(7, 3), score(107, 103), rel_tol=1e-10)
    assert_close("norm", q.norm(), rotary(q, torch.tensor([123]), 1e4).norm(), 1e-12)


@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_gated_rms_norm_is_per_group_norm_times_silu_gate(backend):
    B, T, H, V = 2, 5, 3, 4
    x = torch.randn(B, T, H * V, dtype=torch.float64, requires_grad=True)
    z = torch.randn(B, T, H * V, dtype=torch.float64, requires_grad=True)
    w = torch.randn(H * V, dtype=torch.float64, requires_grad=True)
    groups = x.view(B, T, H, V)
    ref = (groups / groups.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()).flatten(-2) * w * z * torch.sigmoid(z)
    out = gated_rms_norm(x, z, w, 1e-6, V, backend)
    assert_close("y", ref, out, 1e-12)
    dy = torch.randn_like(ref)
    for name, r, o in zip("xzw", torch.autograd.grad((ref * dy).sum(), (x, z, w)),
                          torch.autograd.grad((out * dy).sum(), (x, z, w))):
        assert_close(f"d{name}", r, o, 1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rotary(torch.zeros(1, 4, 1, 5), torch.arange(4), 1e4), "even head size"),
        (lambda: rotary(torch.zeros(1, 4, 1, 4), torch.arange(3), 1e4), "positions"),
        (lambda: gated_rms_norm(torch.zeros(1, 2, 6), torch.zeros(1, 2, 6), torch.ones(6), 1e-6, 4), "multiple of 4"),
        (lambda: gated_rms_norm(torch.zeros(1, 2, 8), torch.zeros(1, 3, 8), torch.ones(8), 1e-6, 4), "one shape"),
        (lambda: gated_rms_norm(torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.ones(8), 1e-6, 0), "the group, >= 1"),
        (lambda: rotary(torch.zeros(8, 8, 4), torch.arange(8), 1e4), r"x \[B, T, H, D\]"),
        (lambda: rotary(torch.zeros(1, 4, 1, 4), torch.arange(4), 0.0), "positive base theta, got 0.0"),
        (lambda: causal_conv1d(torch.zeros(1, 5, 6), torch.zeros(6, 4), activation="relu"), "activation 'relu'"),
        (lambda: causal_conv1d(torch.zeros(1, 5, 6), torch.zeros(5, 4)), r"weight \(5, 4\)"),
        (lambda: causal_conv1d(torch.zeros(1, 5, 6), torch.zeros(6, 4), state=torch.zeros(1, 4, 6)), r"state \(1, 4, 6\)"),
    ],
    ids=["odd-head", "positions-length", "group", "gate-shape", "group-zero", "rotary-3d", "theta-zero",
         "conv-activation", "conv-weight", "conv-state"],
)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_silu_is_what_the_gate_applies():
    """The gate is SiLU(z), as in the model (GatedRMSNorm is given the gate projection before SiLU)."""
    z = torch.randn(1, 1, 4, dtype=torch.float64)
    x = torch.ones(1, 1, 4, dtype=torch.float64)
    assert_close("gate", F.silu(z), gated_rms_norm(x, z, torch.ones(4, dtype=torch.float64), 0.0, 4), 1e-12)


# ---- the project's Triton rotary kernel, run by Triton's interpreter on the CPU ----------------------
# (on the GPU it runs compiled in tests/gpu). CI installs Triton for this (the Makefile's TRITON pin);
# elsewhere, without Triton, the tests skip.
needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None and not os.environ.get("CI"),
    reason="Triton is not installed (pip install triton==3.7.1 runs its kernels' interpreter on the CPU)",
)


@pytest.fixture
def interpreted_kernel(monkeypatch):
    """The rotary kernel defined anew under TRITON_INTERPRET=1 (Triton reads it when a kernel is
    defined), forgotten again afterwards."""
    from oryx.ops.rotary import kernel

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(kernel, "_KERNEL", None)
    return kernel.triton_rotary


@needs_triton
@pytest.mark.parametrize(
    ("B", "T", "H", "D", "per_row", "dtype"),
    [
        pytest.param(2, 37, 5, 64, False, torch.float32, id="T-not-a-block-H-not-a-block"),
        pytest.param(3, 20, 3, 96, True, torch.float32, id="positions-per-row-half-not-pow2"),
        pytest.param(1, 1, 2, 16, False, torch.float32, id="one-position"),
        pytest.param(2, 40, 4, 32, True, torch.bfloat16, id="bf16"),
    ],
)
def test_rotary_kernel_matches_reference(interpreted_kernel, B, T, H, D, per_row, dtype):
    """Forward and backward against the float32 reference at positions up to 70000 (the kernel reads
    the reference's own tables, so float32 agrees to rounding), x a strided view as the mixer passes."""
    base = torch.randn(B, T, H, D + 8).to(dtype)[..., 4 : 4 + D]          # unit stride along D only
    x = base.detach().requires_grad_()
    positions = torch.randint(0, 70_000, (B, T) if per_row else (T,))
    seed = torch.randn(B, T, H, D)
    y = interpreted_kernel(x, positions, 1e4)
    (y.float() * seed).sum().backward()
    rx = base.detach().float().requires_grad_()
    ry = rotary(rx, positions, 1e4, "naive")
    (ry * seed).sum().backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert_close("y", ry, y.float(), tol)
    assert_close("dx", rx.grad, x.grad.float(), tol)


def test_rotary_kernel_sends_more_rows_than_its_grid_has_to_the_reference(monkeypatch):
    """More rows than the kernel's grid axis holds (65535) run the reference; the kernel is not launched.
    (The other limit, rows of 2^31 elements, needs that much memory to test.)"""
    from oryx.ops.rotary import kernel

    monkeypatch.setattr(kernel, "_launch", lambda *a: pytest.fail("the kernel was launched"))
    x, positions = torch.randn(65536, 1, 1, 2), torch.arange(1)
    assert_close("y", rotary(x, positions, 1e4, "naive"), kernel.triton_rotary(x, positions, 1e4), 1e-6)
