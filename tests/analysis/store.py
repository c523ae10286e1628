"""A small real MLflow store, written through the project's own `Tracker` with the names of
docs/architecture.md, with known numbers the analysis tests check against.

Training runs: three families, tagged with what their model is (oryx.tracking.model_tags), `train/loss` = 4 - step / 2 (+ 0.1 per family rank) over steps 0..4.
Evaluation: one parent run per family (tag oryx.kind=eval), nested runs per (task, schedule):
  mqar: accuracy, accuracy/num_kv_pairs=<n>, attention_fraction (+ per layer), a mode log parquet
        (evals.modelog.ModeLog over a real MQAR batch and the schedule's real mask; for `learned:0.25`
        router scores of a known pattern, LEARNED_SCORES, and the modes they give);
  piqa, wikitext: lm-eval style `<task>/<metric>` metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from evals.modelog import ModeLog, Tag
from oryx import presets
from oryx.data.synthetic import MQARConfig
from oryx.routing import parse
from oryx.tracking import model_tags, start_run

N_LAYERS = 2
FAMILIES = ("transformer", "mamba2", "oryx-mamba2")
# (family, schedule) -> mqar accuracy; the Oryx family sweeps `last:N`
MQAR_ACCURACY = {
    ("transformer", "native"): 0.95,
    ("mamba2", "native"): 0.30,
    ("oryx-mamba2", "all_linear"): 0.35,
    ("oryx-mamba2", "last:16"): 0.70,
    ("oryx-mamba2", "all_attention"): 0.90,
    ("oryx-mamba2", "learned:0.25"): 0.80,
}
LM_RESULTS = {  # family -> {task: {metric: value}}
    "transformer": {"piqa": {"acc": 0.60, "acc_stderr": 0.01}, "wikitext": {"word_perplexity": 40.0}},
    "mamba2": {"piqa": {"acc": 0.62, "acc_stderr": 0.01}, "wikitext": {"word_perplexity": 38.0}},
    "oryx-mamba2": {"piqa": {"acc": 0.64, "acc_stderr": 0.01}, "wikitext": {"word_perplexity": 36.0}},
}
MQAR = MQARConfig(vocab_size=64, num_kv_pairs=4, input_seq_len=32, num_examples=4, seed=3)
NATIVE_FRACTION = {"transformer": 1.0, "mamba2": 0.0}


@dataclass
class MadeStore:
    uri: str
    train_ids: dict[str, str] = field(default_factory=dict)           # family -> run id
    mqar_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (family, schedule) -> run id


def loss(family: str, step: int) -> float:
    return 4.0 - step / 2 + 0.1 * FAMILIES.index(family)


def learned_scores(roles: torch.Tensor) -> torch.Tensor:
    """[L, N, T] router scores of the store's learned run, from the MQAR roles [N, T]: layer 0 attends at
    the last 8 positions (score 1, else -1), layer 1 at the query positions (role 3: score 2, else -2)."""
    last = torch.zeros(roles.shape, dtype=torch.bool)
    last[:, -8:] = True
    layer0 = torch.where(last, 1.0, -1.0)
    layer1 = torch.where(roles == 3, 2.0, -2.0)
    return torch.stack([layer0, layer1])


def _modes(family: str, schedule: str, ids: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """bool [L, N, T]: what each layer runs."""
    if schedule.startswith("learned:"):
        return learned_scores(roles) > 0
    if family in NATIVE_FRACTION:
        mask = torch.full(ids.shape, bool(NATIVE_FRACTION[family]))
    else:
        mask = parse(schedule).mask(ids)
    return mask.expand(N_LAYERS, *ids.shape)


def make_store(uri: str) -> MadeStore:
    made = MadeStore(uri)
    batch = MQAR.generate()
    for family in FAMILIES:
        cfg = presets.get(f"{family}-tiny")  # tagged as the trainer tags its runs
        tags = {"oryx.kind": "train", **model_tags(cfg.family, cfg.linear_kinds, cfg.baseline)}
        with start_run("analysis-test", uri=uri, run_name=f"train-{family}", tags=tags) as run:
            run.log_params({"model.preset": f"{family}-tiny", "model.d_model": 64, "schedule": "mixed:4:0.25:0.25",
                            "train.max_steps": 5})
            for step in range(5):
                run.log_metrics({"train/loss": loss(family, step)}, step=step)
            made.train_ids[family] = run.run_id
        with start_run("analysis-test", uri=uri, run_name=f"eval-{family}",
                       tags={"oryx.kind": "eval", "oryx.train_run_id": made.train_ids[family]}) as parent:
            for (fam, schedule), accuracy in MQAR_ACCURACY.items():
                if fam == family:
                    made.mqar_ids[(family, schedule)] = _log_mqar(parent, family, schedule, accuracy, batch)
            for task, metrics in LM_RESULTS[family].items():
                with parent.child(f"{task}/native") as child:
                    child.log_params({"task": task, "schedule": "native", "family": family, "checkpoint": "ckpt"})
                    child.log_metrics({f"{task}/{k}": v for k, v in metrics.items()})
    return made


def _log_mqar(parent, family: str, schedule: str, accuracy: float, batch) -> str:
    modes = _modes(family, schedule, batch.input_ids, batch.roles)
    scores = learned_scores(batch.roles) if schedule.startswith("learned:") else None
    log = ModeLog(N_LAYERS, sample=2)
    for i in range(len(batch)):
        correct = batch.input_ids[i] == batch.input_ids[i]  # every prediction right: a known pattern
        known = batch.answer_mask[i].roll(-1)                 # the prediction made at t targets t + 1
        roles = [batch.role_names[r] for r in batch.roles[i].tolist()]
        log.add(Tag("mqar", i), batch.input_ids[i], modes[:, i], correct, known, roles,
                None if scores is None else scores[:, i])
    with parent.child(f"mqar/{schedule}") as child:
        child.log_params({"task": "mqar", "schedule": schedule, "family": family, "checkpoint": "ckpt"})
        child.log_metrics({"accuracy": accuracy, "exact_match": accuracy / 2,
                           f"accuracy/num_kv_pairs:{MQAR.num_kv_pairs}": accuracy,
                           **log.fractions("mqar")})
        child.log_dataframe(log.frame("mqar", run=child.run_id), "modes/modes.parquet")
        return child.run_id
