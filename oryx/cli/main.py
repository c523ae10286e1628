"""The `oryx` command. Each command group lives in its own module with a `register(app)` function.

User mistakes (OryxError, a config that fails validation) print one line `error: ...` and exit with
status 2, never a traceback. Command modules import heavy libraries inside their functions, so that
`oryx --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from pydantic import ValidationError

from oryx.errors import OryxError, format_validation_error

# Telemetry off in everything the project runs (a user can still opt in by setting these).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

COMMAND_MODULES = [
    "oryx.cli.info",
    "oryx.cli.generate",
    "oryx.cli.bench",
    "oryx.cli.train",
    "oryx.cli.data",
    "oryx.cli.eval",
    "oryx.cli.reproduce",
]

app = typer.Typer(
    name="oryx",
    help="Oryx: train, evaluate and analyse models that switch between attention and a linear recurrence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Typer runs in standalone mode (usage errors print the usage and exit 2 through SystemExit);
    the project's own user errors are caught here.
    """
    try:
        app(args=argv, prog_name="oryx")
    except SystemExit as e:  # typer ends every standalone run with sys.exit
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except OryxError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except ValidationError as e:
        typer.echo(f"error: {format_validation_error(e)}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
