"""`oryx eval lm ARGS`: lm-evaluation-harness's own command line, with the `oryx` model, tracked.

Every lm-eval argument passes through to lm-eval's parser unchanged (`--tasks`, `--include_path`,
`--output_path`, `--limit`, `--num_fewshot`, `--log_samples`, `--model_args`, ...), so a command from
lm-eval's documentation works with `oryx eval lm` in place of `lm_eval`; `ls` and `validate` too.
Defaults that differ: `--model oryx`, `--device` cuda when available else cpu (lm-eval's is cuda:0),
`--batch_size 16` for the oryx model (lm-eval's is 1), and its `log_modes` from `--log-modes`. lm-eval prints its table and writes its files as usual;
then the results go to MLflow (evals.tracking): a parent run for the command, a nested run per task
with the lm-eval metrics (`<task>/<metric>`), the measured attention fraction and the mode log.

Options of this command (not lm-eval's): --experiment NAME, --tracking-uri URI, --no-track,
--log-modes N.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from evals.hub import OFFLINE_HINT, use_offline_mode_if_unreachable
from evals.tracking import log_task_run, metric_name
from oryx.errors import OryxError
from oryx.tracking import KIND_TAG, Tracker

DEFAULT_EXPERIMENT = "oryx-eval"
DEFAULT_LOG_MODES = 8
SUBCOMMANDS = ("run", "ls", "validate")


def oryx_options() -> argparse.ArgumentParser:
    """This command's own options; everything else goes to lm-eval."""
    parser = argparse.ArgumentParser(prog="oryx eval lm", add_help=False, allow_abbrev=False)
    group = parser.add_argument_group("oryx (tracking; every other option is lm-eval's)")
    group.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="NAME",
                       help=f"MLflow experiment of the runs (default {DEFAULT_EXPERIMENT})")
    group.add_argument("--tracking-uri", default=None, metavar="URI",
                       help="MLflow store (default $MLFLOW_TRACKING_URI, else the embedded store under runs/)")
    group.add_argument("--no-track", action="store_true", help="log nothing to MLflow")
    group.add_argument("--log-modes", type=int, default=DEFAULT_LOG_MODES, metavar="N",
                       help=f"per-token mode log of the first N examples of each task (default {DEFAULT_LOG_MODES}; 0 = off)")
    return parser


@dataclass
class _Captured:
    """What one lm-eval evaluation produced: the results dict, the oryx models it built, and the MLflow
    run opened once the evaluation started."""

    results: dict | None = None
    models: list = field(default_factory=list)
    started: bool = False
    tracker: Tracker | None = None


def run(argv: list[str]) -> dict | None:
    """Run lm-eval with these arguments; returns its results (None for `ls`, `validate`, `--help`)."""
    ours, rest = oryx_options().parse_known_args(argv)
    if ours.log_modes < 0:
        raise OryxError(f"--log-modes must be >= 0, got {ours.log_modes}")
    use_offline_mode_if_unreachable()  # before lm-eval imports `datasets`
    from lm_eval._cli import HarnessCLI

    import evals.harness  # noqa: F401  (registers the `oryx` model)

    command = rest[0] if rest and rest[0] in SUBCOMMANDS else "run"
    lm_argv = rest[1:] if rest and rest[0] in SUBCOMMANDS else rest
    if command == "run" and any(a in ("-h", "--help") for a in lm_argv):
        _print_help(HarnessCLI())
        return None
    cli = HarnessCLI()
    namespace = _parse(cli, [command, *lm_argv])
    if command != "run":
        cli.execute(namespace)
        return None
    _apply_defaults(namespace, ours.log_modes)
    from oryx.tracking import start_run

    tasks = ",".join(namespace.tasks or [])

    def open_run() -> Tracker:
        tracker = start_run(ours.experiment, uri=ours.tracking_uri, run_name=f"lm-eval {tasks}"[:200],
                            tags={KIND_TAG: "eval", "oryx.command": "eval lm"}, enabled=not ours.no_track)
        tracker.log_params({"command": shlex.join(["oryx", "eval", "lm", *argv])[:6000], "tasks": tasks,
                            "model": namespace.model, "model_args": str(namespace.model_args)[:6000]})
        return tracker

    captured = _execute(cli, namespace, open_run)
    with captured.tracker or contextlib.nullcontext():
        if captured.results is not None and captured.tracker is not None:
            log_results(captured.tracker, captured.results, captured.models, namespace)
    return captured.results


def _print_help(cli) -> None:
    """What differs from lm-eval, lm-eval's own help, the oryx model's model_args, this command's options."""
    from evals.harness import DEFAULT_BATCH_SIZE, OryxLMArgs

    print("oryx eval lm: lm-eval's `run` command line (below). Defaults that differ: --model oryx, --device cuda\n"
          f"when available (else cpu), and for the oryx model --batch_size {DEFAULT_BATCH_SIZE}.\n")
    with contextlib.suppress(SystemExit):
        _parse(cli, ["run", "--help"])
    print("\nmodel_args of the oryx model (--model_args key=value ...):")
    for name, spec in OryxLMArgs.model_fields.items():
        print(f"  {name:<18}{spec.description}")
    print()
    oryx_options().print_help()


def _parse(cli, args: list[str]) -> argparse.Namespace:
    """lm-eval's parser on `args` (HarnessCLI reads sys.argv)."""
    saved = sys.argv
    sys.argv = ["lm-eval", *args]
    try:
        return cli.parse_args()
    finally:
        sys.argv = saved


# lm-eval passes these to the model beside model_args (`create_from_arg_string(model_args, {...})`): the
# same key in both is a TypeError inside lm-eval, so a model_args value is moved onto the namespace
LIFTED = ("device", "batch_size", "max_batch_size")


def _apply_defaults(namespace: argparse.Namespace, log_modes: int) -> None:
    """--model oryx, --device auto, and for the oryx model its log_modes and a batch size of
    DEFAULT_BATCH_SIZE (lm-eval's default of 1 would leave batching off), where neither the command line
    nor a --config file gives them. The config's model_args are merged here: lm-eval lets command-line
    model_args replace the file's whole. device / batch_size / max_batch_size given as model_args (the
    harness documents them there) become the matching options."""
    from lm_eval.config.evaluate_config import EvaluatorConfig
    from lm_eval.utils import simple_parse_args_string

    from evals.harness import DEFAULT_BATCH_SIZE
    from oryx.device import pick_device

    try:
        config = EvaluatorConfig.load_yaml_config(namespace.config) if getattr(namespace, "config", None) else {}
    except (OSError, ValueError, TypeError) as e:
        raise OryxError(f"--config: {e}") from None
    namespace.model = namespace.model or config.get("model") or "oryx"
    if namespace.model == "oryx":
        from_file = config.get("model_args") or {}
        if isinstance(from_file, str):
            from_file = simple_parse_args_string(from_file)
        namespace.model_args = {"log_modes": log_modes, **from_file, **(namespace.model_args or {})}
        for key in LIFTED:
            if key not in namespace.model_args:
                continue
            value, given = namespace.model_args.pop(key), getattr(namespace, key, None)
            if given is not None and str(given) != str(value):
                raise OryxError(f"--{key} {given} and model_args {key}={value} disagree: give one of them")
            if key == "max_batch_size":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise OryxError(f"model_args max_batch_size={value} is not a whole number") from None
            setattr(namespace, key, value if key == "max_batch_size" else str(value))
    namespace.device = namespace.device or config.get("device") or pick_device("auto").type
    if namespace.model == "oryx" and getattr(namespace, "batch_size", None) is None and "batch_size" not in config:
        namespace.batch_size = str(DEFAULT_BATCH_SIZE)  # lm-eval leaves it out when not given


def _execute(cli, namespace: argparse.Namespace, open_run: Callable[[], Tracker]) -> _Captured:
    """lm-eval's own `run` (its table, its output files), capturing the results and the models.

    Mistakes lm-eval reports before evaluating (an unknown task, a bad option combination) are
    ValueErrors: they become OryxErrors, and no MLflow run is opened for them: `open_run` is called
    once lm-eval has accepted its tasks and the first model is built (a bad checkpoint or schedule in
    model_args fails before that too). A run that fails after that point is closed as FAILED. A
    dataset the hub must provide, offline, is an OryxError too.
    """
    with _capture(open_run) as captured:
        try:
            cli.execute(namespace)
        except ConnectionError as e:
            raise OryxError(f"{e}. {OFFLINE_HINT}") from None
        except (ValueError, FileNotFoundError) as e:
            if isinstance(e, OryxError) or captured.started:
                raise
            raise OryxError(f"lm-eval: {e}") from None
    return captured


class _Created(list):
    """The list OryxLMs append themselves to (evals.harness.CREATED); the first one opens the run."""

    def __init__(self, on_first: Callable[[], None]):
        super().__init__()
        self.on_first = on_first

    def append(self, model) -> None:
        super().append(model)
        if len(self) == 1:
            self.on_first()


@contextlib.contextmanager
def _capture(open_run: Callable[[], Tracker]) -> Iterator[_Captured]:
    """Record what `lm_eval.simple_evaluate` returns and which OryxLMs it builds, while lm-eval's
    command runs (it calls `lm_eval.simple_evaluate`, looked up at call time). The run opens when the
    first OryxLM is built (another --model: when the evaluation starts); an exception after that
    closes it as FAILED."""
    import lm_eval

    from evals.harness import CREATED

    captured = _Captured()
    original = lm_eval.simple_evaluate

    def start() -> None:
        if captured.tracker is None:
            captured.tracker = open_run()

    captured.models = _Created(start)

    def recording(*args, **kwargs):
        captured.started = True
        if kwargs.get("model") != "oryx":
            start()
        token = CREATED.set(captured.models)
        try:
            captured.results = original(*args, **kwargs)
        except BaseException as e:
            if captured.tracker is not None:   # FAILED, or KILLED for an interrupt
                captured.tracker.__exit__(type(e), e, e.__traceback__)
            raise
        finally:
            CREATED.reset(token)
        return captured.results

    lm_eval.simple_evaluate = recording
    try:
        yield captured
    finally:
        lm_eval.simple_evaluate = original


def log_results(tracker, results: dict, models: list, namespace: argparse.Namespace | None = None) -> None:
    """lm-eval results -> MLflow: group metrics on the parent run, a nested run per task."""
    model = models[0] if models else None
    info = model.get_model_info()["oryx"] if model is not None else {}
    model_args: dict[str, Any] = dict(getattr(namespace, "model_args", None) or {})
    checkpoint = info.get("checkpoint") or str(model_args.get("pretrained", ""))
    family = info.get("family") or (getattr(namespace, "model", None) or "unknown")
    for group, values in (results.get("groups") or {}).items():
        tracker.log_metrics(lm_metrics(group, values))
    for task in results.get("configs") or {}:
        metrics = lm_metrics(task, results["results"].get(task, {}))
        modes = None
        if model is not None:
            metrics.update(model.mode_log.fractions(task))
            modes = model.mode_log.frame(task)
        log_task_run(tracker, task, info.get("schedule", "native"), checkpoint, family, metrics, modes,
                     train_run_id=getattr(model, "train_run_id", None))


def lm_metrics(task: str, values: dict) -> dict[str, float]:
    """lm-eval's {'acc,none': 0.5, 'acc_stderr,none': 0.1, 'alias': ..} -> {'<task>/acc': 0.5,
    '<task>/acc_stderr': 0.1}; a filter other than 'none' is kept as '<metric>.<filter>'."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or "," not in key:
            continue
        metric, _, filt = key.partition(",")
        out[metric_name(task, metric if filt == "none" else f"{metric}.{filt}")] = float(value)
    return out
