"""`oryx eval lm ...` (lm-evaluation-harness with the oryx model) and `oryx eval retrieval ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Evaluate checkpoints: lm-eval tasks, and retrieval accuracy against the attention "
                            "fraction.", no_args_is_help=True)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@eval_app.command("lm", context_settings=PASS_THROUGH, add_help_option=False)
def lm_command(ctx: typer.Context) -> None:
    """lm-evaluation-harness with `--model oryx`: every lm-eval option passes through (`oryx eval lm --help`).

    oryx eval lm --include_path evals/tasks --tasks oryx_offline --model_args pretrained=DIR,schedule=last:64
    """
    from evals.lm_command import run

    run(list(ctx.args))


@eval_app.command("retrieval")
def retrieval_command(
    checkpoint: Annotated[str, typer.Argument(help="model directory, or a training output directory")],
    task: Annotated[str, typer.Option(help="mqar or niah")],
    schedule: Annotated[list[str] | None, typer.Option(
        help="schedule spec, repeatable; braces sweep: 'last:{0,16,64}', 'chunks:128:{0.05,0.1}'; "
             "native = the checkpoint's own modes; oracle:query = attention exactly at the task's questions "
             "(an oracle: it reads the task's labels)")] = None,
    n: Annotated[int, typer.Option("--n", help="examples (per num_kv_pairs value for mqar, per context_len x depth cell for niah)")] = 64,
    settings: Annotated[list[str] | None, typer.Option("--set", help="task config field KEY=VALUE, value as YAML "
                        "(repeatable): num_kv_pairs=[4,8], input_seq_len=128; context_len=[256,512], depth=[0,0.5,1]")] = None,
    batch_size: Annotated[int, typer.Option(help="sequences per forward")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16")] = "auto",
    seed: Annotated[int, typer.Option(help="seed of the generated examples")] = 0,
    log_modes: Annotated[int, typer.Option(help="per-token mode log of the first N examples (0 = off)")] = 8,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "oryx-eval",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow store (default $MLFLOW_TRACKING_URI, else runs/)")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="log nothing to MLflow")] = False,
    output: Annotated[Path | None, typer.Option(help="also write the results as JSON to this file")] = None,
) -> None:
    """Accuracy on MQAR or needle retrieval per schedule, with the measured attention fraction
    (per layer and overall) and accuracy per slice; a nested MLflow run per schedule."""
    from evals.retrieval import prepare_sweep
    from oryx.tracking import KIND_TAG, start_run
    from oryx.training.config import parse_overrides

    options = parse_overrides(settings or [])
    schedules = schedule or ["native"]
    # every input is checked before the MLflow run opens: a mistake leaves no FAILED run behind
    sweep = prepare_sweep(checkpoint, task, schedules, n, options, batch_size, device, dtype, seed, log_modes)
    tracker = start_run(experiment, uri=tracking_uri, run_name=f"retrieval {task}", enabled=not no_track,
                        tags={KIND_TAG: "eval", "oryx.command": "eval retrieval"})
    with tracker:
        tracker.log_params({"checkpoint": checkpoint, "task": task, "n": n, "seed": seed,
                            "schedules": " ".join(schedules), **{f"task.{k}": v for k, v in options.items()}})
        results = sweep.run(tracker)
    _print_results(results)
    if output is not None:
        _write_json(output, results)


def _print_results(results) -> None:
    """One row per schedule (attention fraction, accuracy), then accuracy per slice x schedule."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    layers = sorted(k for k in results[0].metrics if k.startswith("attention_fraction/"))
    table = Table(title=f"{results[0].task}: accuracy against the measured attention fraction")
    # schedules and slice names stay whole (they are what the rows mean); number columns give way
    for column in ("schedule", "attention fraction", *(k.split("/")[1] for k in layers), "accuracy", "exact match"):
        table.add_column(column, justify="left" if column == "schedule" else "right", no_wrap=column == "schedule")
    for r in results:
        m = r.metrics
        table.add_row(r.schedule, f"{m['attention_fraction']:.4f}", *(f"{m[k]:.4f}" for k in layers),
                      f"{m['accuracy']:.4f}", f"{m['exact_match']:.4f}")
    console.print(table)
    slices = [k for k in results[0].metrics if k.startswith("accuracy/")]  # in evaluate()'s order
    if slices:
        by_slice = Table(title="accuracy per slice")
        by_slice.add_column("slice", no_wrap=True)
        for r in results:
            by_slice.add_column(r.schedule, justify="right")
        for k in slices:
            by_slice.add_row(k.removeprefix("accuracy/"), *(f"{r.metrics.get(k, float('nan')):.4f}" for r in results))
        console.print(by_slice)


def _write_json(path: Path, results) -> None:
    import json

    from oryx.fileio import write_atomic

    rows = [{"task": r.task, "schedule": r.schedule, "metrics": r.metrics} for r in results]
    write_atomic(path, lambda p: p.write_text(json.dumps(rows, indent=2) + "\n"))


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
