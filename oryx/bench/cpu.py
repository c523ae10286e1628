"""CPU benchmark: forward and forward+backward time of one layer and of whole models, against sequence
length, in each mode. The linear mode should grow linearly with length; attention quadratically."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

from oryx import OryxForCausalLM, presets, routing
from oryx.model.modeling import OryxBlock

MODES = {"linear": "all_linear", "attention": "all_attention", "10% attention": "chunks:128:0.1"}


def median_seconds(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _model_step(model: OryxForCausalLM, ids: torch.Tensor, schedule: str, backward: bool) -> Callable[[], None]:
    def step():
        if backward:
            model(ids, modes=schedule, labels=ids).loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(ids, modes=schedule)
    return step


def _layer_step(block: OryxBlock, x: torch.Tensor, mask: torch.Tensor, backward: bool) -> Callable[[], None]:
    def step():
        if backward:
            block(x, mask, None, 0).sum().backward()
            block.zero_grad(set_to_none=True)
            x.grad = None
        else:
            with torch.no_grad():
                block(x, mask, None, 0)
    return step


def run(
    families: list[str], lengths: list[int], targets: list[str], repeats: int, batch_size: int = 1
) -> list[dict]:
    """Rows of {target, family, mode, T, fwd_ms, fwdbwd_ms}. targets: 'layer' (one block of the small
    preset), 'tiny', 'small' (whole models)."""
    rows = []
    for family in families:
        for target in targets:
            size = "small" if target == "layer" else target
            model = OryxForCausalLM(presets.get(f"{family}-{size}"))
            d = model.config.d_model
            for mode_name, schedule in MODES.items():
                for T in lengths:
                    ids = torch.randint(0, model.config.vocab_size, (batch_size, T))
                    if target == "layer":
                        x = torch.randn(batch_size, T, d, requires_grad=True)
                        mask = routing.parse(schedule).mask(ids)
                        fwd = _layer_step(model.layers[0], x, mask, backward=False)
                        bwd = _layer_step(model.layers[0], x, mask, backward=True)
                    else:
                        fwd = _model_step(model, ids, schedule, backward=False)
                        bwd = _model_step(model, ids, schedule, backward=True)
                    rows.append({
                        "target": target, "family": family, "mode": mode_name, "schedule": schedule, "T": T,
                        "batch_size": batch_size,
                        "fwd_ms": 1e3 * median_seconds(fwd, repeats),
                        "fwdbwd_ms": 1e3 * median_seconds(bwd, repeats),
                    })
    return rows


def scaling_exponents(rows: list[dict]) -> list[dict]:
    """Per (target, family, mode): the slope of log(time) against log(T) between the two longest lengths
    (1 = linear, 2 = quadratic)."""
    out = []
    keys = sorted({(r["target"], r["family"], r["mode"]) for r in rows})
    for key in keys:
        sel = sorted((r for r in rows if (r["target"], r["family"], r["mode"]) == key), key=lambda r: r["T"])
        if len(sel) < 2:
            continue
        a, b = sel[-2], sel[-1]
        ratio = math.log(b["T"] / a["T"])
        out.append({
            "target": key[0], "family": key[1], "mode": key[2], "from_T": a["T"], "to_T": b["T"],
            "fwd_exponent": math.log(b["fwd_ms"] / a["fwd_ms"]) / ratio,
            "fwdbwd_exponent": math.log(b["fwdbwd_ms"] / a["fwdbwd_ms"]) / ratio,
        })
    return out
