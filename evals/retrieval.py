"""Retrieval evaluation: MQAR and needle-in-a-haystack accuracy per schedule, against the measured
attention fraction.

    batch = build_task("mqar", model.config, n=256, options={"num_kv_pairs": [4, 8], "input_seq_len": 128})
    result = evaluate(model, batch, "mqar", resolve_schedule(model.config, "last:16"), batch_size=32,
                      log=ModeLog(model.config.n_layers, sample=8))
    result.metrics   # {'accuracy': .., 'exact_match': .., 'accuracy/num_kv_pairs:4': .., 'attention_fraction': ..}

The examples come from the data layer's seeded generators (oryx.data.synthetic); the model reads each
sequence once, under the schedule, and every answer position is scored: the prediction made at the
position before it must equal its label (docs/architecture.md, "Labels"). `accuracy` counts answer
tokens, `exact_match` examples whose answers are all right. Slices: per-example values (MQAR
num_kv_pairs; needle depth and context_len) and MQAR's query distance, bucketed in powers of two.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from evals.loading import Loaded, load_checkpoint
from evals.modelog import ModeLog, Tag
from evals.schedule import batch_modes, resolve_schedule, schedule_name
from evals.tracking import log_task_run, slice_metric
from oryx.data.synthetic import TASKS, SyntheticBatch
from oryx.data.synthetic.base import IGNORE
from oryx.errors import OryxError
from oryx.model import OryxConfig, OryxForCausalLM
from oryx.routing import Schedule
from oryx.tracking import Tracker

PER_EXAMPLE_SLICES = ("num_kv_pairs", "depth", "context_len")
PER_POSITION_SLICES = ("query_distance",)
# Task options that may be given as a list to sweep (one generated batch per value, concatenated).
SWEPT_OPTIONS = {"mqar": ("num_kv_pairs",), "niah": ()}


def check_task(task: str) -> None:
    """An OryxError naming the known tasks when `task` is not one of them."""
    if task not in TASKS:
        raise OryxError(f"unknown retrieval task {task!r}; known: {', '.join(sorted(TASKS))}")


def build_task(task: str, config: OryxConfig, n: int, options: dict | None = None, seed: int = 0) -> SyntheticBatch:
    """`n` examples (per sweep cell) of `task` for a model of `config`: the vocabulary defaults to the
    model's, and every option is a field of the task's config (MQARConfig, NIAHConfig), validated there.
    MQAR's num_kv_pairs may be a list (one batch of n per value)."""
    check_task(task)
    options = dict(options or {})
    cls = TASKS[task]
    corpus_filler = task == "niah" and options.get("filler", "random") != "random"
    if "vocab_size" not in options and not corpus_filler:
        options["vocab_size"] = config.vocab_size
    if options.get("vocab_size", 0) > config.vocab_size:
        raise OryxError(f"{task}: vocab_size {options['vocab_size']} is larger than the model's vocabulary "
                        f"({config.vocab_size})")
    swept = {k: options.pop(k) for k in SWEPT_OPTIONS[task] if isinstance(options.get(k), list)}
    if empty := [k for k, values in swept.items() if not values]:
        raise OryxError(f"{task}: {empty[0]} is an empty list; give at least one value to sweep")
    cells = [dict(zip(swept, values)) for values in itertools.product(*swept.values())] or [{}]
    batches = [cls(**options, **cell, num_examples=n, seed=seed + i).generate() for i, cell in enumerate(cells)]
    batch = SyntheticBatch.concat(batches)
    if batch.input_ids.shape[1] > config.max_seq_len:
        raise OryxError(f"{task}: examples of {batch.input_ids.shape[1]} positions are longer than the model "
                        f"supports (max_seq_len={config.max_seq_len})")
    if int(batch.input_ids.max()) >= config.vocab_size:
        raise OryxError(f"{task}: token id {int(batch.input_ids.max())} is out of the model's vocabulary "
                        f"({config.vocab_size}); the task's tokenizer or vocab_size does not match the model")
    return batch


@dataclass
class RetrievalResult:
    """One (task, schedule) evaluation: its metrics under their MLflow names (evals.tracking)."""

    task: str
    schedule: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Counts:
    """Right and total answer positions per (slice, value); exact-match counts per example."""

    hits: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    total: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    examples: int = 0
    exact: int = 0

    def add(self, key: tuple[str, str], hits: int, total: int) -> None:
        self.hits[key] += hits
        self.total[key] += total


@torch.no_grad()
def evaluate(
    model: OryxForCausalLM,
    batch: SyntheticBatch,
    task: str,
    schedule: Schedule | None,
    batch_size: int,
    log: ModeLog,
) -> RetrievalResult:
    """Accuracy of `model` on `batch` under `schedule` (resolved by evals.schedule), every sequence's
    modes counted in `log` under `task`. Rows run in groups of equal length (no padding is read)."""
    device = next(model.parameters()).device
    lengths = _lengths(batch)
    counts = _Counts()
    by_length: dict[int, list[int]] = defaultdict(list)
    for row, length in enumerate(lengths.tolist()):
        by_length[length].append(row)
    for length, rows in sorted(by_length.items()):
        for first in range(0, len(rows), batch_size):
            index = torch.tensor(rows[first : first + batch_size])
            _evaluate_rows(model, batch[index], index, length, task, schedule, device, log, counts)
    metrics = {"accuracy": _ratio(counts, ("all", "all")),
               "exact_match": counts.exact / max(counts.examples, 1)}
    for (name, value), total in sorted(counts.total.items(), key=lambda item: _slice_order(*item[0])):
        if name != "all":
            metrics[slice_metric("accuracy", name, value)] = counts.hits[(name, value)] / total
    metrics.update(log.fractions(task))
    return RetrievalResult(task, schedule_name(schedule), metrics)


def _evaluate_rows(model, batch, index, length, task, schedule, device, log, counts) -> None:
    """Rows of one length: one forward, answers scored, modes logged."""
    ids = batch.input_ids[:, :length]                                                  # [B, T]
    labels = batch.labels[:, :length]
    modes = batch_modes(schedule, batch, length)
    modes = modes.to(device) if isinstance(modes, torch.Tensor) else modes
    out = model(ids.to(device), modes=modes)
    scores = out.router_scores.cpu() if out.router_scores is not None else None                # [L, B, T]
    pred = out.logits.argmax(-1).cpu()                                                 # [B, T]
    target = labels[:, 1:]                                                             # next token's label
    known = target != IGNORE                                                           # [B, T-1]
    right = (pred[:, :-1] == target) & known
    for b in range(ids.shape[0]):
        _count_row(batch, b, right[b], known[b], counts)
        pad = torch.zeros(1, dtype=torch.bool)
        roles = [batch.role_names[r] for r in batch.roles[b, :length].tolist()]
        log.add(Tag(task, int(index[b])), ids[b], out.modes[:, b].cpu(), torch.cat([right[b], pad]),
                torch.cat([known[b], pad]), roles, None if scores is None else scores[:, b])


def _count_row(batch: SyntheticBatch, b: int, right: torch.Tensor, known: torch.Tensor, counts: _Counts) -> None:
    """Add one example's answers (right/known [T-1], aligned with the predicting positions)."""
    hits, total = int(right.sum()), int(known.sum())
    counts.add(("all", "all"), hits, total)
    counts.examples += 1
    counts.exact += int(total > 0 and hits == total)
    for name in PER_EXAMPLE_SLICES:
        if name in batch.slices:
            counts.add((name, _value(batch.slices[name][b])), hits, total)
    for name in PER_POSITION_SLICES:
        if name in batch.slices:
            distance = batch.slices[name][b, 1 : 1 + known.shape[0]]                    # at answer positions
            for d, ok in zip(distance[known].tolist(), right[known].tolist()):
                counts.add((name, _bucket(d)), int(ok), 1)


def _lengths(batch: SyntheticBatch) -> torch.Tensor:
    """[N] positions of each example before its padding."""
    if "context_len" in batch.slices:
        return batch.slices["context_len"].long()
    return torch.full((len(batch),), batch.input_ids.shape[1], dtype=torch.long)


def _value(x: torch.Tensor) -> str:
    """A slice value as it appears in a metric name: 8, 0.5 (no trailing zeros)."""
    v = x.item()
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bucket(distance: int) -> str:
    """Power-of-two bucket of a query distance: 1 -> '1-1', 5 -> '4-7', 100 -> '64-127'."""
    lo = 1 << (max(distance, 1).bit_length() - 1)
    return f"{lo}-{2 * lo - 1}"


def _slice_order(name: str, value: str) -> tuple:
    """Slices by name, then numerically by value ('2-3' before '16-31')."""
    try:
        return (name, float(value.split("-")[0]), value)
    except ValueError:
        return (name, float("inf"), value)


def _ratio(counts: _Counts, key: tuple[str, str]) -> float:
    return counts.hits[key] / counts.total[key] if counts.total[key] else float("nan")


def expand_sweep(spec: str) -> list[str]:
    """'last:{0,16,64}' -> ['last:0', 'last:16', 'last:64']; several {...} groups give their product; a
    spec without braces is itself."""
    parts = re.split(r"(\{[^{}]*\})", spec)
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    if any(c == [""] and p.startswith("{") for c, p in zip(choices, parts)):
        raise OryxError(f"empty sweep {{}} in schedule {spec!r}")
    return ["".join(combo) for combo in itertools.product(*choices)]


@dataclass
class Sweep:
    """A checked retrieval sweep, ready to run: the loaded model, its schedules and the examples."""

    loaded: Loaded
    task: str
    schedules: list[Schedule | None]
    batch: SyntheticBatch
    batch_size: int
    log_modes: int
    options: dict

    def run(self, tracker: Tracker | None = None) -> list[RetrievalResult]:
        """Evaluate each schedule; each result goes to a nested run of `tracker` as soon as it is done."""
        tracker = tracker or Tracker.disabled()
        config, results = self.loaded.model.config, []
        for schedule in self.schedules:
            log = ModeLog(config.n_layers, sample=self.log_modes)
            result = evaluate(self.loaded.model, self.batch, self.task, schedule, self.batch_size, log)
            log_task_run(tracker, self.task, result.schedule, str(self.loaded.directory), config.family,
                         result.metrics, log.frame(self.task), self.loaded.train_run_id, self.options)
            results.append(result)
        return results


def prepare_sweep(
    checkpoint: str,
    task: str,
    schedules: list[str],
    n: int,
    options: dict | None = None,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    log_modes: int = 8,
) -> Sweep:
    """Everything that can be wrong (checkpoint, schedules, oracle roles, task options, lengths), checked
    before anything is evaluated or logged: an OryxError names the first problem."""
    if n < 1 or batch_size < 1 or log_modes < 0:
        raise OryxError(f"need n >= 1, batch_size >= 1 and log_modes >= 0; got {n}, {batch_size}, {log_modes}")
    check_task(task)  # before the checkpoint is loaded
    loaded = load_checkpoint(checkpoint, device, dtype)
    config = loaded.model.config
    resolved = [resolve_schedule(config, s, annotated=True) for spec in schedules for s in expand_sweep(spec)]
    batch = build_task(task, config, n, options, seed)
    for schedule in resolved:
        if schedule is not None and schedule.needs_annotation:
            batch[:1].oracle_mask(schedule.roles)  # an unknown role is an OryxError naming the task's roles
    _check_tokenizer(task, options or {}, loaded)
    return Sweep(loaded, task, resolved, batch, batch_size, log_modes, dict(options or {}))


def _check_tokenizer(task: str, options: dict, loaded: Loaded) -> None:
    """A needle hidden in corpus text must be in the model's own tokenizer."""
    filler = options.get("filler", "random")
    if task != "niah" or filler == "random":
        return
    from oryx.data.corpus import TokenCorpus

    corpus = TokenCorpus.open(filler).tokenizer
    if loaded.tokenizer is None or loaded.tokenizer.info() != corpus.info():
        mine = "no tokenizer" if loaded.tokenizer is None else f"tokenizer {loaded.tokenizer.info()}"
        raise OryxError(f"niah filler {filler} is text in tokenizer {corpus.info()}, but the checkpoint has {mine}")
