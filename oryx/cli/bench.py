"""`oryx bench ...`: benchmarks that print a table and write JSON under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oryx import presets

ORYX_FAMILIES = [name for name, family in presets.FAMILIES.items() if family.oryx]

bench_app = typer.Typer(help="Benchmarks (tables printed, JSON written under benchmarks/results/).", no_args_is_help=True)


def _ints(text: str, what: str) -> list[int]:
    from oryx.errors import OryxError

    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OryxError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise OryxError(f"{what} must be positive integers, got {text!r}")
    return values


@bench_app.command("cpu")
def cpu(
    families: Annotated[str, typer.Option(help=f"comma-separated preset families of {', '.join(presets.FAMILIES)}")] = ",".join(ORYX_FAMILIES),
    lengths: Annotated[str, typer.Option(help="comma-separated sequence lengths")] = "256,512,1024,2048,4096,8192",
    targets: Annotated[str, typer.Option(help="layer (one block of the small preset), tiny, small")] = "layer,tiny,small",
    repeats: Annotated[int, typer.Option(min=1, help="timed calls per point (median reported)")] = 3,
    out: Annotated[Path, typer.Option(help="directory for cpu.json")] = Path("benchmarks/results"),
) -> None:
    """Forward and forward+backward time against sequence length, per mode, on the CPU."""
    from rich.console import Console
    from rich.table import Table

    from oryx.bench import cpu as bench
    from oryx.bench.record import write_results
    from oryx.errors import OryxError

    fams = [f.strip() for f in families.split(",") if f.strip()]
    for f in fams:
        if f not in presets.FAMILIES:
            raise OryxError(f"unknown family {f!r}; known: {', '.join(presets.FAMILIES)}")
    tgts = [t.strip() for t in targets.split(",") if t.strip()]
    for t in tgts:
        if t not in ("layer", "tiny", "small"):
            raise OryxError(f"unknown target {t!r}; choose from layer, tiny, small")
    Ts = _ints(lengths, "--lengths")
    rows = bench.run(fams, Ts, tgts, repeats)
    exps = bench.scaling_exponents(rows)
    path = write_results("cpu", rows, {"scaling_exponents": exps}, out)

    console = Console()
    table = Table(title="CPU time per call, ms (forward / forward+backward)")
    for col in ("target", "family", "mode", *[str(T) for T in Ts]):
        table.add_column(col, justify="right" if col.isdigit() else "left")
    for key in sorted({(r["target"], r["family"], r["mode"]) for r in rows}):
        cells = {r["T"]: f"{r['fwd_ms']:.1f} / {r['fwdbwd_ms']:.1f}" for r in rows
                 if (r["target"], r["family"], r["mode"]) == key}
        table.add_row(*key, *[cells[T] for T in Ts])
    console.print(table)
    growth = Table(title="growth exponent between the two longest lengths (1 = linear, 2 = quadratic)")
    for col in ("target", "family", "mode", "forward", "forward+backward"):
        growth.add_column(col)
    for e in exps:
        growth.add_row(e["target"], e["family"], e["mode"], f"{e['fwd_exponent']:.2f}", f"{e['fwdbwd_exponent']:.2f}")
    console.print(growth)
    console.print(f"wrote {path}")


@bench_app.command("kernels")
def kernels(
    family: Annotated[str, typer.Option(help=f"preset family of the Oryx layer: {' or '.join(ORYX_FAMILIES)}")] = ORYX_FAMILIES[0],
    lengths: Annotated[str, typer.Option(help="comma-separated sequence lengths N")] = "2048,8192,32768",
    widths: Annotated[str, typer.Option(help="comma-separated model widths (768, 1024, 2048)")] = "1024,2048",
    layouts: Annotated[str, typer.Option(help="head layouts: preset (the family's), hd64, hd128 (plain heads)")] = "preset,hd64,hd128",
    fractions: Annotated[str, typer.Option(help="comma-separated attention fractions in [0, 1]")] = "0,0.05,0.1,0.25,1",
    patterns: Annotated[str, typer.Option(help="scattered (random positions) and/or chunked (128-position chunks)")] = "scattered,chunked",
    decode_contexts: Annotated[str, typer.Option(help="context lengths of the decoding latency (empty: skip)")] = "1024,4096,16384,65536",
    out: Annotated[Path, typer.Option(help="directory for the JSON file")] = Path("benchmarks/results"),
    name: Annotated[str, typer.Option(help="file name (without .json)")] = "kernels-h200",
    resume: Annotated[bool, typer.Option("--resume", help="keep the rows already in <out>/<name>.json and measure only the missing ones (default: measure everything, replace the file)")] = False,
) -> None:
    """Oryx mixer vs Transformer and linear mixers on a CUDA GPU: forward and forward+backward times, the
    attention part alone, decoding latency and peak memory; prints tables, writes <out>/<name>.json.
    With --resume an interrupted or partial run continues where it stopped."""
    import torch

    from oryx.errors import OryxError

    if not torch.cuda.is_available():
        raise OryxError("`oryx bench kernels` needs a CUDA GPU, and torch.cuda.is_available() is False here")
    from oryx.bench import kernels as bench

    if family not in ORYX_FAMILIES:
        raise OryxError(f"--family must be one of {', '.join(ORYX_FAMILIES)}, got {family!r}")
    Ds = _ints(widths, "--widths")
    if bad := [d for d in Ds if d not in bench.SIZE_OF_WIDTH]:
        raise OryxError(f"--widths: no preset of width {bad[0]}; choose from {', '.join(map(str, bench.SIZE_OF_WIDTH))}")
    lays = [x.strip() for x in layouts.split(",") if x.strip()]
    if bad := [x for x in lays if x not in bench.LAYOUTS]:
        raise OryxError(f"--layouts: unknown layout {bad[0]!r}; choose from {', '.join(bench.LAYOUTS)}")
    pats = [x.strip() for x in patterns.split(",") if x.strip()]
    if bad := [x for x in pats if x not in bench.PATTERNS]:
        raise OryxError(f"--patterns: unknown pattern {bad[0]!r}; choose from {', '.join(bench.PATTERNS)}")
    try:
        fs = [float(x) for x in fractions.split(",") if x.strip()]
    except ValueError:
        raise OryxError(f"--fractions must be comma-separated numbers, got {fractions!r}") from None
    if not fs or any(not 0 <= f <= 1 for f in fs):
        raise OryxError(f"--fractions must lie in [0, 1], got {fractions!r}")
    contexts = _ints(decode_contexts, "--decode-contexts") if decode_contexts.strip() else []
    bench.run_and_report(family, _ints(lengths, "--lengths"), Ds, lays, fs, pats, contexts, out, name, resume)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("train")
def train(
    families: Annotated[str, typer.Option(help="comma-separated preset families")] = ",".join(presets.FAMILIES),
    size: Annotated[str, typer.Option(help="preset size: tiny, small, 125m, 350m, 1.4b")] = "tiny",
    seq_len: Annotated[int, typer.Option(min=8, help="positions per sequence")] = 256,
    batch: Annotated[int, typer.Option(min=1, help="sequences per optimizer step")] = 8,
    micro_batch: Annotated[int, typer.Option(min=0, help="sequences per forward (0 = the whole batch)")] = 0,
    steps: Annotated[int, typer.Option(min=1, help="timed optimizer steps per preset")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="untimed steps first")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    cpu_threads: Annotated[int, typer.Option(min=0, help="PyTorch threads on the CPU (0 = PyTorch's default)")] = 0,
    out: Annotated[Path, typer.Option(help="directory for the JSON file")] = Path("benchmarks/results"),
    name: Annotated[str, typer.Option(help="file name without .json (default train-<size>-<device>)")] = "",
    schedule: Annotated[str, typer.Option(help="training schedule of the two-mode presets, e.g. learned:0.1 "
                                               "(default: their mixed-training schedule)")] = "",
) -> None:
    """Training throughput of the trainer's optimizer step: tokens/s and model FLOPs utilisation per
    family (the FLOP count is defined in oryx/bench/train.py); prints a table, writes JSON."""
    from rich.console import Console
    from rich.table import Table

    from oryx.bench import train as bench
    from oryx.bench.record import write_results
    from oryx.errors import OryxError

    fams = [f.strip() for f in families.split(",") if f.strip()]
    names = [f"{f}-{size}" for f in fams]
    for n in names:
        presets.split(n)  # OryxError naming an unknown family or size
    if device not in ("auto", "cpu", "cuda"):
        raise OryxError(f"--device must be auto, cpu or cuda, got {device!r}")
    micro = micro_batch or batch
    if batch % micro:
        raise OryxError(f"--batch ({batch}) must be a multiple of --micro-batch ({micro})")
    console = Console(width=max(Console().width, 150))  # the table's columns do not fold in a log
    rows, peaks = bench.run(names, seq_len, batch, micro, steps, warmup, device, cpu_threads or None,
                            on_row=lambda r: console.print(
        f"{r['preset']}: {r['step_ms']:.1f} ms/step, {r['tokens_per_s']:,.0f} tokens/s", highlight=False),
                            schedule=schedule or None)
    where = "cuda" if rows[0]["device"].startswith("cuda") else "cpu"
    path = write_results(name or f"train-{size}-{where}", rows, peaks, out)

    mfu = "mfu" in rows[0]
    table = Table(title=f"training throughput, {size} presets, {batch} x {seq_len} tokens per step ({rows[0]['dtype']})")
    for col in ("preset", "schedule", "attn frac", "step ms", "tokens/s", "model TFLOP/s",
                *(["MFU"] if mfu else []), "vs matmul"):
        table.add_column(col, justify="left" if col in ("preset", "schedule") else "right")
    for r in rows:
        table.add_row(r["preset"], r["schedule"], f"{r['attention_fraction']:.2f}", f"{r['step_ms']:.1f}",
                      f"{r['tokens_per_s']:,.0f}", f"{r['model_tflops_per_s']:.3f}",
                      *([f"{r['mfu']:.1%}"] if mfu else []), f"{r['mfu_vs_matmul']:.1%}")
    console.print(table)
    console.print(f"matmul peak measured: {peaks['matmul_peak_tflops']:.2f} TFLOP/s ({peaks['matmul_dtype']})"
                  + (f"; nominal bf16 peak {peaks['nominal_bf16_peak_tflops']:.0f} TFLOP/s" if mfu else ""))
    console.print(f"wrote {path}")
