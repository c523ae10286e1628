"""`oryx bench ...`: benchmarks that print a table and write JSON under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    families: Annotated[str, typer.Option(help="comma-separated preset families")] = "oryx-mamba2,oryx-gdn",
    lengths: Annotated[str, typer.Option(help="comma-separated sequence lengths")] = "256,512,1024,2048,4096,8192",
    targets: Annotated[str, typer.Option(help="layer (one block of the small preset), tiny, small")] = "layer,tiny,small",
    repeats: Annotated[int, typer.Option(min=1, help="timed calls per point (median reported)")] = 3,
    out: Annotated[Path, typer.Option(help="directory for cpu.json")] = Path("benchmarks/results"),
) -> None:
    """Forward and forward+backward time against sequence length, per mode, on the CPU."""
    from rich.console import Console
    from rich.table import Table

    from oryx import presets
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


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
