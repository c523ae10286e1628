"""`oryx reproduce --preset NAME [--out DIR]`: train, evaluate and tabulate a preset (oryx/reproduce)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def reproduce(
    preset: Annotated[str, typer.Option(help="smoke (CPU, minutes), gpu-small (one GPU), paper-1.4b (a cluster), "
                                        "or a preset .yaml file; --list shows them")] = "smoke",
    out: Annotated[Path | None, typer.Option(help="tables, figures, trained models and the stage ledger "
                                             "(default runs/out/reproduce-<preset>)")] = None,
    list_presets: Annotated[bool, typer.Option("--list", help="list the presets and what they need, and exit")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="train and evaluate only this model of the "
                                                   "preset (repeatable), e.g. one model per device call")] = None,
    report_only: Annotated[bool, typer.Option("--report-only", help="no training or evaluation: write the "
                                              "tables and figures of what the store holds")] = False,
) -> None:
    """Train the preset's models under one token budget, evaluate them (retrieval with a schedule sweep,
    lm-eval tasks), log everything to MLflow and write the paper-format tables (Markdown + CSV) and
    figures (PNG) into --out. A rerun skips the stages already done (a killed run resumes)."""
    from rich.console import Console

    from analysis.tables import to_markdown
    from oryx.reproduce.preset import PRESET_DIR, load_preset
    from oryx.reproduce.runner import Reproduction, default_out_dir

    console = Console()
    if list_presets:
        for path in sorted(PRESET_DIR.glob("*.yaml")):
            p = load_preset(path.stem)
            console.print(f"[bold]{p.name}[/bold] ({p.device}): {p.description}\n  needs: {p.resources}")
        return
    t0 = time.perf_counter()
    spec = load_preset(preset)
    out_dir = out or default_out_dir(spec.name)
    report = Reproduction(spec, out_dir, console, only).run(report_only)
    for name, table in report.tables.items():
        if name == "lm_results":  # the long table: in results/lm.csv, too long to print
            continue
        console.print(f"\n[bold]{name} table[/bold] ({out_dir / 'tables' / name}.md)")
        console.print(to_markdown(table), markup=False, highlight=False, soft_wrap=True)
    console.print(f"files: {len(report.files)} under {out_dir} (tables/, figures/)")
    console.print(f"reproduce {spec.name}: {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
