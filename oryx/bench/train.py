"""Training throughput: tokens/s and model FLOPs utilisation of the trainer's own optimizer step.

Each preset is set up by the trainer (`Trainer.prepare`: the same model, schedule, autocast and AdamW as
`oryx train`) on MQAR batches of the given length; batches are made before the clock starts, then
`Trainer.update` is timed over `steps` steps after `warmup`.

Model FLOPs per trained token (`train_flops_per_token`), training = 3 x forward (forward + backward):
  * matmuls: 6 x every 2-D weight a token goes through (projections, the short conv kernels, the output
    head: the tied embedding counts once, as the head; the lookup is free). In a layer that owns two
    mixers, each mode's own weights count for the share of positions in that mode;
  * attention: 6 x (Hk*K + H*V) x (T+1)/2 per attention-mode position and attention layer (scores and
    weighted values over, on average, half the causal context);
  * recurrence: 6 x 2*H*K*V per position (every position writes the state) plus 6 x 2*H*K*V per
    linear-mode position (the read), per linear layer. The chunked algorithm's extra intra-chunk work
    is not useful work and is not counted.
MFU = achieved model FLOP/s / the device's peak: the nominal dense bf16 peak for known GPUs, and, for
every device, the measured rate of a large matmul in the training dtype (`mfu_vs_matmul`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import torch

from oryx import presets
from oryx.model import OryxConfig, OryxForCausalLM, count_parameters
from oryx.ops import flacore
from oryx.routing import NATIVE
from oryx.training.config import RunConfig

# Dense bf16 tensor-core peaks from the vendors' datasheets (SXM parts), FLOP/s.
NOMINAL_BF16_PEAK = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


def forward_flops_per_token(config: OryxConfig, seq_len: int, attention_fraction: float) -> dict[str, float]:
    """Forward model FLOPs per token by kind: matmul (projections and head), conv (the short depthwise
    convs), attention, recurrence; at a share `attention_fraction` of positions in attention mode
    (layers that own one mixer always run it). See the module docstring."""
    with torch.device("meta"):
        model = OryxForCausalLM(config)
    f = attention_fraction
    dual = set(config.dual_layers)
    terms = {"matmul": 0.0, "conv": 0.0, "attention": 0.0, "recurrence": 0.0}
    for name, p in model.named_parameters():
        if p.dim() < 2 or (name.startswith("embed.") and model.lm_head is not None):
            continue  # vectors, and the embedding lookup of an untied model
        layer = int(name.split(".")[1]) if name.startswith("layers.") else None
        share = 1.0
        if layer in dual and ".mixer.attn." in name:
            share = f
        elif layer in dual and ".mixer.lin." in name:
            share = 1.0 - f
        terms["conv" if "conv." in name else "matmul"] += 2 * share * p.numel()
    hk, k, h, v = config.num_qk_heads, config.head_dim_qk, config.num_heads, config.head_dim_v
    for i in range(config.n_layers):
        owned = config.layer_mixers(i)
        if "attention" in owned:
            terms["attention"] += (f if i in dual else 1.0) * 2 * (hk * k + h * v) * (seq_len + 1) / 2
        if config.linear_kind(i) is not None:
            terms["recurrence"] += 2 * h * k * v * (1.0 + ((1.0 - f) if i in dual else 1.0))
    return terms


def train_flops_per_token(config: OryxConfig, seq_len: int, attention_fraction: float) -> float:
    """Model FLOPs to train on one token: 3 x the forward's (forward + backward)."""
    return 3 * sum(forward_flops_per_token(config, seq_len, attention_fraction).values())


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n x n matmul in `dtype` on `device` (best of `repeats`)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def nominal_peak(device: torch.device) -> float | None:
    """The datasheet bf16 peak of a known GPU, else None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in NOMINAL_BF16_PEAK.items() if key in name), None)


def run_config(preset: str, seq_len: int, batch: int, micro: int, device: str, out_dir: str,
               cpu_threads: int | None = None, schedule: str | None = None, model: dict | None = None) -> RunConfig:
    """The run config of one measurement: MQAR batches at the preset's vocabulary, `schedule` (default the
    mixed training schedule for models whose layers own two mixers, their training default; e.g.
    learned:0.1 to time a learned router), `model` fields over the preset's, tracking off."""
    config = presets.get(preset)
    dual = len(config.dual_layers) == config.n_layers
    chunk = min(128, max(1, seq_len // 8))
    return RunConfig.model_validate({
        "model": {"preset": preset, **(model or {})},
        "data": {"kind": "mqar", "val_examples": 1,
                 "task": {"vocab_size": config.vocab_size, "input_seq_len": seq_len,
                          "num_kv_pairs": max(1, min(64, seq_len // 8))}},
        "schedule": {"train": (schedule or f"mixed:{chunk}:0.1:0.1") if dual else NATIVE},
        "train": {"max_steps": 10**6, "out_dir": out_dir, "batch_size": batch, "micro_batch_size": micro,
                  "device": device, "cpu_threads": cpu_threads},
        "tracking": {"enabled": False},
    })


def measure(preset: str, seq_len: int, batch: int, micro: int, steps: int, warmup: int, device: str,
            cpu_threads: int | None = None, schedule: str | None = None, model: dict | None = None) -> dict:
    """One row: tokens/s, step time, model FLOPs and MFU of `steps` timed optimizer steps."""
    from oryx.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(run_config(preset, seq_len, batch, micro, device, tmp, cpu_threads, schedule, model)).prepare()
        dev = trainer.device
        batches = [trainer.batch(s) for s in range(1, warmup + steps + 1)]
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        fractions = []
        for s in range(warmup):
            trainer.update(s + 1, batches[s])
        _sync(dev)
        start = time.perf_counter()
        for s in range(warmup, warmup + steps):
            fractions.append(trainer.update(s + 1, batches[s])[2])
        _sync(dev)
        seconds = (time.perf_counter() - start) / steps
    cfg = trainer.model_config
    fraction = sum(fractions) / len(fractions)
    tokens_per_s = batch * seq_len / seconds
    flops = train_flops_per_token(cfg, seq_len, fraction)
    row = {
        "preset": preset,
        "family": cfg.family,
        "params": count_parameters(trainer.module)["total"],
        "schedule": str(trainer.schedule) if trainer.schedule is not None else NATIVE,
        "router": cfg.router.model_dump(mode="json") if cfg.router is not None else None,
        "attention_fraction": fraction,
        "seq_len": seq_len,
        "batch": batch,
        "micro_batch": micro,
        "device": str(dev),
        "dtype": "bf16 autocast" if dev.type == "cuda" else "fp32",
        "step_ms": seconds * 1e3,
        "tokens_per_s": tokens_per_s,
        "model_flops_per_token": flops,
        "model_tflops_per_s": tokens_per_s * flops / 1e12,
    }
    if dev.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        if any(cfg.linear_kind(i) for i in range(cfg.n_layers)):  # what the `auto` backend ran
            row["linear_kernels"] = "fla-core (triton)" if flacore.available() else "torch (chunked)"
    return row


def run(names: list[str], seq_len: int, batch: int, micro: int, steps: int, warmup: int, device: str,
        cpu_threads: int | None = None, on_row: Callable[[dict], None] = lambda row: None,
        schedule: str | None = None) -> tuple[list[dict], dict]:
    """Rows for every preset (each passed to `on_row` as soon as it is measured), and the peaks their
    MFU is measured against."""
    rows = []
    for n in names:
        rows.append(measure(n, seq_len, batch, micro, steps, warmup, device, cpu_threads, schedule))
        on_row(rows[-1])
    dev = torch.device(rows[0]["device"]) if rows else torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    n = 8192 if dev.type == "cuda" else 1024
    peaks = {"matmul_peak_tflops": matmul_peak(dev, dtype, n) / 1e12, "matmul_dtype": str(dtype).removeprefix("torch."),
             "matmul_size": n}
    nominal = nominal_peak(dev)
    if nominal:
        peaks["nominal_bf16_peak_tflops"] = nominal / 1e12
    for row in rows:
        row["mfu_vs_matmul"] = row["model_tflops_per_s"] / peaks["matmul_peak_tflops"]
        if nominal:
            row["mfu"] = row["model_tflops_per_s"] * 1e12 / nominal
    return rows, peaks


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
