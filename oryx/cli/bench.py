"""`oryx bench ...`: benchmarks that print a table and write JSON under benchmarks/results/."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks (tables printed, JSON written under benchmarks/results/).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
