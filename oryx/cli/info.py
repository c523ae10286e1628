"""`oryx info NAME_OR_DIR`: parameters per component, tied fraction, inference state per token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def load_config(name_or_dir: str):
    """A preset name or a model/checkpoint directory -> OryxConfig."""
    from oryx import presets
    from oryx.model.checkpoint import load_config as load_dir_config

    if Path(name_or_dir).exists():
        return load_dir_config(name_or_dir)
    return presets.get(name_or_dir)


def info(
    name_or_dir: Annotated[str, typer.Argument(help="a preset name (see `oryx info --list`) or a checkpoint directory")] = "",
    dtype: Annotated[str, typer.Option(help="activation dtype for the state sizes: bfloat16, float16, float32")] = "bfloat16",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    list_presets: Annotated[bool, typer.Option("--list", help="list the preset names and exit")] = False,
    list_kinds: Annotated[bool, typer.Option("--kinds", help="list the linear kinds and their families and exit")] = False,
) -> None:
    """Parameters (total, per component, mixer-specific, tied fraction) and inference state sizes."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from oryx import presets
    from oryx.errors import OryxError
    from oryx.model import OryxForCausalLM, count_parameters, state_bytes
    from oryx.model.kinds import KINDS

    console = Console()
    if list_kinds:
        console.print(kinds_table(presets.FAMILIES, KINDS))
        return
    if list_presets:
        for name in presets.names():
            console.print(name)
        return
    if not name_or_dir:
        raise OryxError("give a preset name or a checkpoint directory (oryx info --list shows the presets)")
    if dtype not in DTYPE_BYTES:
        raise OryxError(f"--dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    config = load_config(name_or_dir)
    with torch.device("meta"):
        counts = count_parameters(OryxForCausalLM(config))
    state = state_bytes(config, DTYPE_BYTES[dtype])
    report = {
        "name": name_or_dir,
        "family": config.family,
        "linear_kinds": config.linear_kinds,
        "baseline": config.baseline,
        "layers": config.n_layers,
        "d_model": config.d_model,
        "mixers": [config.layer_mixers(i) for i in range(config.n_layers)],
        "parameters": counts,
        "state_dtype": dtype,
        "state_bytes": state,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    kinds = ", ".join(KINDS[k].title for k in config.linear_kinds) or "attention only"
    table = Table(title=f"{name_or_dir} ({config.family}: {kinds}; {config.n_layers} layers, d_model {config.d_model})")
    table.add_column("parameters")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for comp, n in sorted(counts["components"].items(), key=lambda kv: -kv[1]):
        table.add_row(comp, f"{n:,}", f"{n / counts['total']:.1%}")
    table.add_row("[bold]total[/bold]", f"[bold]{counts['total']:,}[/bold]", "")
    table.add_row("mixer-specific", f"{counts['mixer_specific']:,}", f"{counts['mixer_specific'] / counts['total']:.1%}")
    table.add_row("tied fraction", f"{counts['tied_fraction']:.4f}", "")
    console.print(table)
    st = Table(title=f"inference state ({dtype} activations, float32 recurrent state)")
    st.add_column("state")
    st.add_column("bytes", justify="right")
    st.add_row("KV cache per position", f"{state['kv_cache_per_position']:,}")
    st.add_row("recurrent state per sequence", f"{state['recurrent_per_sequence']:,}")
    st.add_row("conv states per sequence", f"{state['conv_per_sequence']:,}")
    console.print(st)


def kinds_table(families: dict, kinds: dict):
    """A rich Table: one row per linear kind of the registry (oryx/model/kinds.py), with its families."""
    from rich.table import Table

    table = Table(title="linear kinds (oryx/model/kinds.py); every family has the sizes of `oryx info --list`")
    for col in ("kind", "recurrence", "families", "conv activation", "head layout"):
        table.add_column(col)
    for kind in kinds.values():
        owners = ", ".join(name for name, family in families.items() if family.kind == kind.name)
        table.add_row(kind.name, f"{kind.title}: {kind.summary}", owners, kind.conv_activation or "none",
                      kind.layout.__name__)
    return table


def register(app: typer.Typer) -> None:
    app.command("info")(info)
