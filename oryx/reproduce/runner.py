"""`oryx reproduce`: train a preset's models under one token budget, evaluate them, write the tables
and figures. Each step is a stage of the ledger (oryx/reproduce/ledger.py): a rerun skips what is done,
and a training killed midway resumes from its newest checkpoint.

Stages, in order: train/<model> for each model, retrieval/<task>/<model> (<task>.2 for a
task's second entry), lm/<model>. Then the report
(analysis.report.write_report over the runs of the trained models) is written anew from the store, so a
rerun of a finished reproduction prints it again. Everything is logged to the MLflow
store the commands use (experiment `reproduce-<preset>`); the tables and figures go to the output dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from oryx.errors import OryxError
from oryx.fileio import read_json_object
from oryx.reproduce.ledger import Ledger
from oryx.reproduce.preset import LMSpec, Preset, RetrievalSpec, TrainSpec, resolve
from oryx.routing import NATIVE


@dataclass
class Stage:
    name: str
    run: Callable[[], dict[str, Any]]  # does the work, returns the outputs recorded in the ledger


class Reproduction:
    """One preset reproduced into `out_dir`; with `only`, just the stages of those models (one model per
    device call: the report then covers every model of the preset that the store has a training of)."""

    def __init__(self, preset: Preset, out_dir: Path, console: Console | None = None, only: list[str] | None = None):
        self.preset, self.out_dir = preset, Path(out_dir)
        self.console = console or Console()
        self.experiment = f"reproduce-{preset.name}"
        self.ledger = Ledger(self.out_dir, preset.name)
        names = [t.name for t in preset.train]
        unknown = [m for m in only or [] if m not in names]
        if unknown:
            raise OryxError(f"--only {', '.join(unknown)}: not a model of preset {preset.name!r} ({', '.join(names)})")
        self.only = set(only) if only else None

    # ---- the whole run ---------------------------------------------------------------------------------
    def run(self, report_only: bool = False):
        """Every stage not yet done, in order, then the report; returns it (analysis.report.Report).
        report_only: no stage, just the report of what the store has (needs no device)."""
        if report_only:
            return self.report()
        check_device(self.preset)
        stages = self.stages()
        t0 = time.perf_counter()
        self.console.print(f"[bold]reproduce {self.preset.name}[/bold]: {self.preset.description}\n"
                           f"needs: {self.preset.resources}\noutput: {self.out_dir}")
        if self.preset.parallel > 1:
            self.train_parallel(stages, t0)
        for i, stage in enumerate(stages, 1):
            label = f"[{i}/{len(stages)}] {stage.name}"
            if self.ledger.done(stage.name):
                self.console.print(f"{label}: done earlier ({self.ledger.stages[stage.name]['seconds']:.0f} s), skipped")
                continue
            self.console.rule(label, align="left")
            start = time.perf_counter()
            outputs = stage.run()
            self.ledger.record(stage.name, outputs, time.perf_counter() - start)
            self.console.print(f"{label}: done in {time.perf_counter() - start:.1f} s "
                               f"(total {time.perf_counter() - t0:.0f} s)")
        self.console.rule("report", align="left")
        return self.report()

    def stages(self) -> list[Stage]:
        p = self.preset
        out = [Stage(f"train/{t.name}", lambda t=t: self.train(t)) for t in p.train]
        out += [Stage(f"retrieval/{label}/{m}", lambda r=r, m=m: self.retrieval(r, m))
                for label, r in zip(retrieval_labels(p.retrieval), p.retrieval) for m in r.models]
        out += [Stage(f"lm/{m}", lambda spec=spec, m=m: self.lm(spec, m)) for spec in p.lm for m in spec.models]
        return [s for s in out if self.only is None or s.name.rsplit("/", 1)[1] in self.only]

    # ---- stages ----------------------------------------------------------------------------------------
    def train_dir(self, name: str) -> Path:
        return self.out_dir / "train" / name

    def run_config(self, name: str):
        """The run config of model `name` with the preset's and the model's overrides."""
        from oryx.training.config import load_run_config

        spec = next(t for t in self.preset.train if t.name == name)
        return load_run_config(resolve(spec.config), [*self.preset.overrides, *spec.overrides])

    def train_overrides(self, spec: TrainSpec) -> list[str]:
        """Preset and model overrides, then the token budget's max_steps, the output dir and the experiment."""
        config = self.run_config(spec.name)
        per_step = config.train.batch_size * sequence_length(config.data)
        steps = max(1, self.preset.token_budget // per_step)
        return [*self.preset.overrides, *spec.overrides, f"train.max_steps={steps}", f"train.out_dir={self.train_dir(spec.name)}",
                f"tracking.experiment={self.experiment}", f"tracking.run_name={spec.name}"]

    def train_command(self, spec: TrainSpec) -> list[str]:
        """`oryx train CONFIG OVERRIDES [--nproc N]` for one model, as a process to start."""
        nproc = ["--nproc", str(self.preset.nproc)] if self.preset.nproc > 1 else []
        return [sys.executable, "-m", "oryx", "train", str(resolve(spec.config)), *self.train_overrides(spec), *nproc]

    def summary(self, spec: TrainSpec) -> dict[str, Any]:
        """The summary.json a finished training wrote: the train stage's output."""
        from oryx.training.trainer import SUMMARY_FILE

        return read_json_object(self.train_dir(spec.name) / SUMMARY_FILE)

    def train_parallel(self, stages: list[Stage], t0: float) -> None:
        """The train stages not done yet, `preset.parallel` at a time, each `oryx train` in its own process
        (output in <out>/logs/<model>.log). A failed training lets the others finish, then stops the run."""
        wanted = {s.name for s in stages}  # --only leaves out the other models
        todo = [t for t in self.preset.train if f"train/{t.name}" in wanted and not self.ledger.done(f"train/{t.name}")]
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        running: dict[str, tuple[subprocess.Popen, float, TrainSpec]] = {}
        failed: list[str] = []
        try:
            self._run_parallel(todo, running, failed, logs, t0)
        finally:  # an interrupt or an error here leaves no training running behind
            for process, _, _ in running.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait()
        if failed:
            raise OryxError(f"training failed: {'; '.join(failed)}")

    def _run_parallel(self, todo: list[TrainSpec], running: dict, failed: list[str], logs: Path, t0: float) -> None:
        """train_parallel's loop: start trainings up to `preset.parallel`, record each as it ends."""
        while todo or running:
            while todo and len(running) < self.preset.parallel:
                spec = todo.pop(0)
                with open(logs / f"{spec.name}.log", "ab") as log:
                    process = subprocess.Popen(self.train_command(spec), stdout=log, stderr=subprocess.STDOUT)
                running[spec.name] = (process, time.perf_counter(), spec)
                self.console.print(f"train/{spec.name}: started ({len(running)} running, log {logs / spec.name}.log)")
            time.sleep(1.0)
            for name, (process, start, spec) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[name]
                seconds = time.perf_counter() - start
                if process.returncode != 0:
                    failed.append(f"{name} (exit status {process.returncode}, see {logs / name}.log)")
                    continue
                self.ledger.record(f"train/{name}", self.summary(spec), seconds)
                self.console.print(f"train/{name}: done in {seconds:.1f} s (total {time.perf_counter() - t0:.0f} s)")

    def train(self, spec: TrainSpec) -> dict[str, Any]:
        """Train (or finish training) one model; its summary.json is the stage's output."""
        from oryx.training.config import load_run_config
        from oryx.training.trainer import Diverged, Trainer

        path, overrides = resolve(spec.config), self.train_overrides(spec)
        if self.preset.nproc > 1:  # `oryx train --nproc N` starts torchrun
            command = self.train_command(spec)
            code = subprocess.call(command)
            if code != 0:
                raise OryxError(f"training {spec.name} failed (exit status {code}): {' '.join(command)}")
            return self.summary(spec)
        try:
            return Trainer(load_run_config(path, overrides), path).run()
        except Diverged as e:
            raise OryxError(f"training {spec.name} diverged: {e}") from None

    def retrieval(self, spec: RetrievalSpec, model: str) -> dict[str, Any]:
        """The schedule sweep on a model that owns both mixers in every layer, its native modes otherwise."""
        from evals.retrieval import prepare_sweep
        from oryx.tracking import KIND_TAG, start_run

        directory = self.train_dir(model)
        schedules = spec.schedules if owns_both_mixers(directory) else [NATIVE]
        sweep = prepare_sweep(str(directory), spec.task, schedules, spec.n, dict(spec.options), log_modes=spec.log_modes)
        tracker = start_run(self.experiment, run_name=f"retrieval {spec.task} {model}",
                            tags={KIND_TAG: "eval", "oryx.command": "reproduce"})
        with tracker:
            tracker.log_params({"checkpoint": str(directory), "task": spec.task, "n": spec.n,
                                "schedules": " ".join(schedules)})
            results = sweep.run(tracker)
        return {"eval_run_id": tracker.run_id,
                "accuracy": {r.schedule: r.metrics["accuracy"] for r in results}}

    def lm(self, spec: LMSpec, model: str) -> dict[str, Any]:
        """`oryx eval lm` on one model with the preset's arguments, once per schedule (dual-mixer models)."""
        from evals.lm_command import run

        directory = self.train_dir(model)
        data = self.run_config(model).data
        metadata = [] if "--metadata" in spec.args or not hasattr(data, "path") else [
            "--metadata", json.dumps({"corpus": str(Path(data.path).resolve())})]
        schedules = spec.schedules if owns_both_mixers(directory) else [NATIVE]
        outputs = {}
        for schedule in schedules:
            args = ["--model_args", f"pretrained={directory},schedule={schedule}", "--experiment", self.experiment,
                    *metadata, *spec.args]
            results = run(args)
            if results is None:
                raise OryxError(f"lm-eval evaluated nothing for {model} (arguments: {' '.join(args)})")
            outputs[schedule] = sorted(results.get("results", {}))
        return {"tasks": outputs}

    def report(self):
        """Tables and figures of every evaluation of the trained models (analysis.report): the training
        runs this ledger recorded, and for a model it has none of (trained by another `--only` run), the
        newest finished training run of that name in this preset's experiment."""
        from analysis.report import write_report
        from analysis.runs import open_store, runs_frame

        store = open_store()
        ids = {t.name: self.ledger.outputs(f"train/{t.name}").get("mlflow_run_id")
               for t in self.preset.train if self.ledger.done(f"train/{t.name}")}
        missing = [t.name for t in self.preset.train if not ids.get(t.name)]
        if missing:
            runs = runs_frame(store, kind="train")
            if not runs.empty:
                runs = runs[(runs["experiment"] == self.experiment) & (runs["status"] == "FINISHED")]
                for name in missing:
                    found = runs[runs["run_name"] == name].sort_values("start_time")["run_id"].tolist()
                    ids[name] = found[-1] if found else None
        return write_report(store, self.out_dir, [i for i in ids.values() if i])


def retrieval_labels(specs: list[RetrievalSpec]) -> list[str]:
    """A stage label per retrieval entry: its task, then `<task>.2`, `<task>.3` for more entries of the
    same task (say two MQAR settings), so each gets stages of its own in the ledger."""
    seen: dict[str, int] = {}
    labels = []
    for spec in specs:
        seen[spec.task] = seen.get(spec.task, 0) + 1
        labels.append(spec.task if seen[spec.task] == 1 else f"{spec.task}.{seen[spec.task]}")
    return labels


def sequence_length(data) -> int:
    """Positions per training sequence of a run config's data section: the corpus window, or the width
    of the synthetic task's examples."""
    if hasattr(data, "seq_len"):
        return data.seq_len
    return int(data.task.model_copy(update={"num_examples": 1}).generate().input_ids.shape[1])


def owns_both_mixers(train_dir: Path) -> bool:
    """Whether every layer of the trained model owns attention and a linear mixer (a schedule applies),
    read from its newest checkpoint's config without hashing the checkpoint (the evaluation that follows
    verifies what it loads)."""
    from oryx.model.checkpoint import load_config
    from oryx.pretrained import resolve_model_dir
    from oryx.training.checkpoints import checkpoints

    newest = checkpoints(train_dir)
    config = load_config(newest[0] if newest else resolve_model_dir(train_dir))
    return len(config.dual_layers) == config.n_layers


def check_device(preset: Preset) -> None:
    """A cuda preset on a machine without (enough) CUDA devices is refused before anything starts."""
    if preset.device != "cuda":
        return
    import torch

    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found < preset.nproc:
        raise OryxError(f"preset {preset.name!r} needs {preset.nproc} CUDA device(s) ({preset.resources}); "
                        f"this machine has {found}. On a CPU machine run `oryx reproduce --preset smoke`.")


def default_out_dir(preset: str) -> Path:
    """runs/out/reproduce-<preset> under the runs dir ($ORYX_RUNS_DIR or ./runs)."""
    from oryx.tracking import runs_dir

    return runs_dir() / "out" / f"reproduce-{preset}"

