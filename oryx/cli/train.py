"""`oryx train CONFIG.yaml [KEY=VALUE ...] [--nproc N]`: train from a run config (oryx/training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer


def train(
    config: Annotated[Path, typer.Argument(help="run config (YAML), e.g. runs/smoke/oryx-mamba2-mqar.yaml")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="dotted overrides KEY=VALUE, e.g. train.max_steps=100 model.d_model=256"),
    ] = None,
    nproc: Annotated[int, typer.Option(help="processes on this machine (starts torchrun; DDP or FSDP2)")] = 1,
) -> None:
    """Train a model; rerunning the same command resumes from its newest complete checkpoint.

    Checkpoints, metrics.jsonl and summary.json go to train.out_dir; metrics go to MLflow (tracking.uri, else $MLFLOW_TRACKING_URI, else the SQLite store under runs/).

    A run whose loss becomes NaN or infinite stops with exit status 1 and keeps its checkpoints; Ctrl-C or SIGTERM stops it with status 130 (the MLflow run is marked KILLED).
    """
    from oryx.errors import OryxError
    from oryx.training.config import load_run_config
    from oryx.training.trainer import Diverged, Trainer

    overrides = overrides or []
    run_config = load_run_config(config, overrides)  # errors surface here, once, before any process starts
    if nproc < 1:
        raise OryxError(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        if run_config.tracking.enabled:  # fail fast here, once, rather than in rank 0 under torchrun
            from oryx.tracking.store import open_client, resolve_tracking_uri

            open_client(resolve_tracking_uri(run_config.tracking.uri))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "oryx", "train", str(config), *overrides]
        try:
            raise typer.Exit(subprocess.call(command))
        except KeyboardInterrupt:  # Ctrl-C reached torchrun and its workers too; they stop on their own
            raise typer.Exit(130) from None
    # SIGTERM (kill, torchrun stopping its workers) ends the run like Ctrl-C: the MLflow run is marked
    # KILLED instead of staying RUNNING; the checkpoints on disk are complete ones either way
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        summary = Trainer(run_config, config).run()
    except KeyboardInterrupt:
        typer.echo("error: stopped (the newest complete checkpoint resumes the run)", err=True)
        raise typer.Exit(130) from None
    except Diverged as e:
        if int(os.environ.get("RANK", "0")) == 0:  # every process stops; one says why
            typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if int(os.environ.get("RANK", "0")) == 0:
        val = "  ".join(f"{k} {v:.4f}" for k, v in summary["val"].items())
        typer.echo(f"done: step {summary['step']}  loss {summary['loss']:.4f}  {val}")
        typer.echo(f"model: {summary['checkpoint']}")
        if summary["mlflow_run_id"]:
            typer.echo(f"mlflow: run {summary['mlflow_run_id']} in {summary['tracking_uri']}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
