"""`Tracker`: the one MLflow wrapper of the project (training and evaluation log through it).

    tracker = start_run("my-experiment", run_name="smoke", tags={"oryx.kind": "train"})
    tracker.log_params({"model.d_model": 64})
    tracker.log_metrics({"train/loss": 2.3}, step=10)
    with tracker.child("mqar/last:32", tags={"task": "mqar"}) as sub:      # a nested run
        sub.log_dataframe(df, "modes/modes.parquet")
    tracker.close()

    Tracker.disabled()        # the same methods, doing nothing (tracking switched off)

Start fails fast: an unreachable server or unusable store is an OryxError before any work starts.
Afterwards nothing logged is lost: every call becomes a record kept until the store confirmed it. When
the store stops answering, records queue up (in order, timestamps kept) and the queue is retried every
`retry_interval_s`; when it answers again the queue is sent. If it still does not answer when the root
run closes, the whole history (every run, every record, sent or not) is written to the embedded local
store (`oryx.tracking.store.embedded_uri()`), or, if that fails too, to a JSON-lines file under the runs
dir, and a message says where.

A resumed run (`start_run(..., resume_run_id=...)`, a training run rerun after a kill) continues its
run in the store and does not send a metric again at a step the store already holds for that key: the
process before the kill logged the steps between its last checkpoint and the kill, and the resumed one
redoes them. At resume the steps each metric key holds are read (one query per key); a metric at one of
those steps is skipped, so each key's history keeps one entry per step (and a resumed run that logs
more often than the killed one still sends the steps that one did not log).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oryx.errors import OryxError
from oryx.tracking.store import (
    embedded_uri,
    experiment_id,
    first_line,
    open_client,
    resolve_tracking_uri,
    runs_dir,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

# Within MLflow's limits per log_batch call (1000 entities in all, at most 100 params and 100 tags)
MAX_METRICS_PER_BATCH = 800
MAX_PARAMS_TAGS_PER_BATCH = 100
# Errors that are the caller's mistake (a bad metric name...): raised, never queued.
CALLER_ERRORS = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"}
# The names every stage writes and `analysis/` reads back: one definition each.
PARENT_TAG = "mlflow.parentRunId"     # MLflow's own tag of a nested run
KIND_TAG = "oryx.kind"                # train | eval: which command made the run
TRAIN_RUN_TAG = "oryx.train_run_id"   # on an eval run: the training run of the checkpoint it scored
# on a training run, what the model is (analysis reads these, never a list of family names):
FAMILY_TAG = "oryx.family"            # OryxConfig.family: 'oryx-mamba2', 'transformer', 'hybrid', ...
LINEAR_KINDS_TAG = "oryx.linear_kinds"  # its linear kinds, comma-separated ('mamba2'), 'none' for a Transformer
BASELINE_TAG = "oryx.baseline"        # 'true' for a single-mixer model (no layer owns two mixers), else 'false'
TRAIN_LOSS = "train/loss"             # the training loss metric (training curves)
MODE_LOG_ARTIFACT = "modes/modes.parquet"  # per-token modes of an eval run (evals.modelog columns)


def model_tags(family: str, linear_kinds: list[str], baseline: bool) -> dict[str, str]:
    """What a training run's model is, as tags (FAMILY_TAG, LINEAR_KINDS_TAG, BASELINE_TAG): from the
    model config's `family`, `linear_kinds` and `baseline` (the trainer passes them; tracking knows no model)."""
    return {FAMILY_TAG: family, LINEAR_KINDS_TAG: ",".join(linear_kinds) or "none", BASELINE_TAG: str(baseline).lower()}


def _say(message: str) -> None:
    print(f"oryx.tracking: {message}", file=sys.stderr, flush=True)


@dataclass
class _Run:
    """One MLflow run as the tracker knows it: its id in the store once created, its full history."""

    name: str | None
    tags: dict[str, str]
    parent: _Run | None = None
    run_id: str | None = None
    history: list[_Record] = field(default_factory=list)
    held_steps: dict[str, set[int]] = field(default_factory=dict)  # a resumed run: the store's steps per key
    continued: bool = False  # the store had this run before (a resumed training run)


@dataclass
class _Record:
    """One logging call, kept (in order) until the store confirmed it.

    kind: 'create' (the run itself), 'batch' (metrics [key, value, timestamp_ms, step], params and tags
    as [key, value]), 'artifact' (a local copy `path`, logged under `artifact_dir`), 'status' (end).
    """

    run: _Run
    kind: str
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    path: Path | None = None
    artifact_dir: str | None = None
    status: str | None = None

    def to_json(self) -> dict:
        return {"run": self.run.name, "run_id": self.run.run_id, "kind": self.kind, "metrics": self.metrics,
                "params": self.params, "tags": self.tags, "path": str(self.path) if self.path else None,
                "artifact_dir": self.artifact_dir, "status": self.status}


class _Connection:
    """The store a root run and its nested runs log to, with the queue of records not yet sent."""

    def __init__(self, client: MlflowClient, uri: str, experiment: str, retry_interval_s: float):
        self.client, self.uri, self.experiment = client, uri, experiment
        self.experiment_id = experiment_id(client, uri, experiment)
        self.retry_interval_s = retry_interval_s
        self.pending: deque[_Record] = deque()
        self.runs: list[_Run] = []
        self.offline_since: float | None = None
        self.next_try = 0.0
        self.tmp = Path(tempfile.mkdtemp(prefix="oryx-tracking-"))

    def submit(self, record: _Record) -> None:
        record.run.history.append(record)
        self.pending.append(record)
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Send queued records in order; True when the queue is empty. While the store is down, tries
        at most every retry_interval_s (unless `force`), so training never waits on it for long."""
        if self.offline_since is not None and not force and time.monotonic() < self.next_try:
            return False
        queued = len(self.pending)
        while self.pending:
            count = self._mergeable(self.pending)
            try:
                self._send([self.pending[i] for i in range(count)])
            except Exception as e:
                if getattr(e, "error_code", None) in CALLER_ERRORS:
                    raise
                if self.offline_since is None:
                    self.offline_since = time.monotonic()
                    _say(f"{self.uri} is not answering ({first_line(e, 200)}); training goes on, records are "
                         f"kept and sent when it answers again (retried every {self.retry_interval_s:g} s)")
                self.next_try = time.monotonic() + self.retry_interval_s
                return False
            for _ in range(count):
                self.pending.popleft()
        if self.offline_since is not None:
            _say(f"{self.uri} answers again: sent {queued} queued record(s)")
            self.offline_since = None
        return True

    @staticmethod
    def _mergeable(queue: deque[_Record]) -> int:
        """How many records from the head of the queue go in one request: consecutive batches of one
        run, within MLflow's limits per call (so a long outage is sent in few requests)."""
        head = queue[0]
        if head.kind != "batch":
            return 1
        metrics = params = tags = count = 0
        for record in queue:
            if record.kind != "batch" or record.run is not head.run:
                break
            metrics, params, tags = metrics + len(record.metrics), params + len(record.params), tags + len(record.tags)
            if count and (metrics > MAX_METRICS_PER_BATCH or max(params, tags) > MAX_PARAMS_TAGS_PER_BATCH):
                break
            count += 1
        return count

    def _send(self, records: list[_Record]) -> None:
        _write(self.client, self.experiment_id, records)

    def close(self) -> None:
        """Final flush; if the store still does not answer, write everything elsewhere and say where."""
        try:
            if self.flush(force=True):
                return
            self._fallback()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _fallback(self) -> None:
        unsent = len(self.pending)
        local = embedded_uri()
        if local != self.uri:
            try:
                client = open_client(local)
                exp = experiment_id(client, local, self.experiment)
                ids = _replay(client, exp, self.runs, self.uri)
                _say(f"{self.uri} did not answer; {unsent} record(s) were never sent there. The whole run was "
                     f"written to the local store {local} (run id {ids[0]}); see it with "
                     f"`mlflow ui --backend-store-uri {local}`")
                return
            except Exception as e:
                _say(f"the local store {local} failed too ({first_line(e, 200)})")
        path = runs_dir() / f"unsent-{time.strftime('%Y%m%d-%H%M%S')}-{self.runs[0].run_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = path.with_suffix(".artifacts")
        with path.open("w") as f:
            for run in self.runs:
                for record in run.history:
                    if record.path is not None:
                        target = keep / record.path.relative_to(self.tmp)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(record.path, target) if record.path.is_file() else shutil.copytree(
                            record.path, target, dirs_exist_ok=True)
                        record.path = target
                    f.write(json.dumps(record.to_json()) + "\n")
        _say(f"{self.uri} did not answer; {unsent} record(s) were never sent. Everything logged was written "
             f"to {path}")


def _write(client: MlflowClient, exp_id: str, records: list[_Record]) -> None:
    """Send records (all of one kind and run when there are several) to a store."""
    from mlflow.entities import Metric, Param, RunTag

    head = records[0]
    run = head.run
    if head.kind == "create":
        tags = dict(run.tags)
        if run.parent is not None:
            tags[PARENT_TAG] = run.parent.run_id
        created = client.create_run(exp_id, run_name=run.name, tags=tags)
        run.run_id = created.info.run_id
    elif head.kind == "batch":
        metrics = [Metric(k, v, t, s) for r in records for k, v, t, s in r.metrics]
        params = list({k: Param(k, v) for r in records for k, v in r.params}.values())
        tags = list({k: RunTag(k, v) for r in records for k, v in r.tags}.values())
        calls = max(-(-len(metrics) // MAX_METRICS_PER_BATCH), -(-max(len(params), len(tags)) // MAX_PARAMS_TAGS_PER_BATCH), 1)
        for i in range(calls):
            m, p = slice(i * MAX_METRICS_PER_BATCH, (i + 1) * MAX_METRICS_PER_BATCH), slice(
                i * MAX_PARAMS_TAGS_PER_BATCH, (i + 1) * MAX_PARAMS_TAGS_PER_BATCH)
            client.log_batch(run.run_id, metrics=metrics[m], params=params[p], tags=tags[p])
    elif head.kind == "artifact":
        if head.path.is_dir():
            client.log_artifacts(run.run_id, str(head.path), head.artifact_dir)
        else:
            client.log_artifact(run.run_id, str(head.path), head.artifact_dir)
    elif head.kind == "status":
        client.set_terminated(run.run_id, status=head.status)


def _replay(client: MlflowClient, exp_id: str, runs: list[_Run], origin: str) -> list[str]:
    """Write every run's whole history to another store (parents first); returns the new run ids."""
    copies: dict[int, _Run] = {}
    for run in runs:
        copy = _Run(run.name, {**run.tags, "oryx.fallback_of": f"{origin} {run.run_id}"},
                    copies.get(id(run.parent)))
        copies[id(run)] = copy
        for record in run.history:
            _write(client, exp_id, [_Record(**{**record.__dict__, "run": copy})])
    return [copies[id(run)].run_id for run in runs]


class Tracker:
    """A run in an MLflow store (see the module docstring); `Tracker.disabled()` does nothing."""

    def __init__(self, connection: _Connection | None, run: _Run | None, root: bool):
        self._conn, self._run, self._root = connection, run, root
        self._closed = False

    @classmethod
    def disabled(cls) -> Tracker:
        """A tracker whose methods do nothing (STYLE.md 12): code logs unconditionally."""
        return cls(None, None, root=True)

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    @property
    def run_id(self) -> str | None:
        """The run's id in the store (None when disabled, or for a nested run created while offline)."""
        return self._run.run_id if self._run is not None else None

    @property
    def continued(self) -> bool:
        """Whether this run continues one the store already had (`start_run(resume_run_id=...)`)."""
        return self._run is not None and self._run.continued

    @property
    def uri(self) -> str | None:
        return self._conn.uri if self._conn is not None else None

    @property
    def experiment_id(self) -> str | None:
        return self._conn.experiment_id if self._conn is not None else None

    # ---- logging ---------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params (values as strings; MLflow keeps a param's first value)."""
        items = [(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._submit("batch", params=items[i:i + MAX_PARAMS_TAGS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Metrics at `step` (0 when None), timestamped now; in a resumed run, not a key at a step the store
        already held for it at the resume (see the module docstring)."""
        now, step = int(time.time() * 1000), int(step or 0)
        held = self._run.held_steps if self._run is not None else {}
        items = [(k, float(v), now, step) for k, v in metrics.items() if step not in held.get(k, ())]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self._submit("batch", metrics=items[i:i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._submit("batch", tags=items[i:i + MAX_PARAMS_TAGS_PER_BATCH])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file or directory, stored under the folder `artifact_path` of the run's artifacts. A copy is
        taken now, so later changes to the file (or an outage of the store) lose nothing."""
        if not self.enabled:
            return
        path = Path(path)
        copy = Path(tempfile.mkdtemp(dir=self._conn.tmp)) / path.name
        shutil.copytree(path, copy) if path.is_dir() else shutil.copy2(path, copy)
        self._submit("artifact", path=copy, artifact_dir=artifact_path)

    def log_dataframe(self, df: pd.DataFrame, artifact_path: str) -> None:
        """A DataFrame as parquet at `artifact_path` inside the run's artifacts (e.g. 'modes/modes.parquet')."""
        if not self.enabled:
            return
        folder, _, name = artifact_path.rpartition("/")
        copy = Path(tempfile.mkdtemp(dir=self._conn.tmp)) / name
        df.to_parquet(copy, index=False)
        self._submit("artifact", path=copy, artifact_dir=folder or None)

    def log_text(self, text: str, artifact_path: str) -> None:
        """A text file at `artifact_path` inside the run's artifacts."""
        if not self.enabled:
            return
        folder, _, name = artifact_path.rpartition("/")
        copy = Path(tempfile.mkdtemp(dir=self._conn.tmp)) / name
        copy.write_text(text)
        self._submit("artifact", path=copy, artifact_dir=folder or None)

    def flush(self) -> bool:
        """Try to send what is queued now; True when nothing is left."""
        return self._conn.flush(force=True) if self.enabled else True

    # ---- nested runs and the end of a run ----------------------------------------------------------
    def child(self, run_name: str, tags: Mapping[str, Any] | None = None) -> Tracker:
        """A nested run under this one (tag mlflow.parentRunId), e.g. one per (task, schedule) of an
        evaluation. Close it (or use it as a context manager) when done."""
        if not self.enabled:
            return Tracker.disabled()
        run = _Run(run_name, {k: str(v) for k, v in (tags or {}).items()}, parent=self._run)
        self._conn.runs.append(run)
        self._conn.submit(_Record(run, "create"))
        return Tracker(self._conn, run, root=False)

    def close(self, status: str = "FINISHED") -> None:
        """End the run (FINISHED, FAILED or KILLED). Closing the root run sends what is queued, or writes
        the whole history to the local store when its store still does not answer."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        self._submit("status", status=status)
        if self._root:
            self._conn.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, value, tb) -> None:
        status = "FINISHED" if kind is None else ("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")
        self.close(status)

    def _submit(self, kind: str, **fields) -> None:
        if self.enabled:
            self._conn.submit(_Record(self._run, kind, **fields))


def start_run(
    experiment: str,
    *,
    uri: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    resume_run_id: str | None = None,
    skip_held_steps: bool = True,
    enabled: bool = True,
    retry_interval_s: float = 30.0,
) -> Tracker:
    """Open the store (`resolve_tracking_uri(uri)`; OryxError when it cannot be reached) and start a run
    in `experiment`, or continue run `resume_run_id` when the store has it (`Tracker.continued`). In a
    continued run, metrics at steps the store already holds are not sent again (the same steps redone
    give the same values), unless `skip_held_steps` is False (a resume with a changed config redoes
    them differently: its values are sent, and MLflow shows the newest)."""
    if not enabled:
        return Tracker.disabled()
    uri = resolve_tracking_uri(uri)
    client = open_client(uri)
    try:
        conn = _Connection(client, uri, experiment, retry_interval_s)
        run = _Run(run_name, {k: str(v) for k, v in (tags or {}).items()})
        conn.runs.append(run)
        if resume_run_id is not None and _resume(conn, run, resume_run_id):
            if not skip_held_steps:
                run.held_steps = {}
            return Tracker(conn, run, root=True)
        if resume_run_id is not None:
            _say(f"run {resume_run_id} is not in experiment {experiment!r} of {uri}; starting a new run")
        record = _Record(run, "create")
        run.history.append(record)
        _write(conn.client, conn.experiment_id, [record])  # not queued: a run that cannot start fails now
    except OryxError:
        raise
    except Exception as e:  # the store answered, then failed: still before any work, so fail now
        raise OryxError(f"tracking store {uri} failed to start a run in experiment {experiment!r}: "
                        f"{first_line(e, 200)}") from None
    return Tracker(conn, run, root=True)


def _resume(conn: _Connection, run: _Run, run_id: str) -> bool:
    """Continue run `run_id` when the store has it in this experiment, noting the steps it holds
    for each metric key (one query per key); False otherwise."""
    from mlflow.exceptions import MlflowException

    try:
        found = conn.client.get_run(run_id)
    except MlflowException:
        return False
    if found.info.experiment_id != conn.experiment_id:
        return False
    run.run_id, run.continued = run_id, True
    run.held_steps = {key: {m.step for m in conn.client.get_metric_history(run_id, key)}
                      for key in found.data.metrics}
    conn.client.update_run(run_id, status="RUNNING")
    run.history.append(_Record(run, "create"))  # a fallback copy into another store recreates it
    return True
