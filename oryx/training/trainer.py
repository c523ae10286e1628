"""`Trainer`: the training loop behind `oryx train`.

    summary = Trainer(load_run_config("runs/smoke/oryx-mamba2-mqar.yaml"), "runs/smoke/oryx-mamba2-mqar.yaml").run()

One optimizer step: the global batch of step s (`data.batch(s)`, the same for any number of processes),
its mode mask drawn from the training schedule (on the whole batch, so the draws do not depend on the
process count), this process's rows split into micro-batches (gradient accumulation), bf16 autocast on
GPU, loss = summed cross-entropy over the global batch's targets / their count, gradient clipping, AdamW
with warmup + cosine. Every `log_every` steps: metrics to MLflow and `metrics.jsonl`; every `val_every`:
validation loss per mode; every `checkpoint_every`: an atomic checkpoint (oryx.training.checkpoints).

Rerunning the same command resumes from the newest complete checkpoint, with the model, optimizer, RNG
states and data position restored, and ends on exactly the loss of an uninterrupted run (CPU). The run
config must be the checkpoint's (`run_config.yaml`), but for the keys a resume may change
(config.RESUMABLE_KEYS: max_steps, frequencies, device, tracking, ...): another value is an OryxError
listing the changes, before anything is written, unless train.allow_config_change=true accepts them
(recorded as the MLflow tag `oryx.config_change.<step>`; never a model change). A checkpoint without a
readable run_config.yaml resumes with a warning. The resumed MLflow run is not sent again the metrics it
holds already (the steps a killed process logged after its last checkpoint); metrics.jsonl is cut back
to the checkpoint and rewritten.

A non-finite loss or gradient norm stops the run (`Diverged`) before the update, and a non-finite
validation loss before the checkpoint of that step: the checkpoints on disk are the good ones.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from oryx.data.synthetic import IGNORE
from oryx.device import pick_device
from oryx.errors import CheckpointError, OryxError, format_validation_error
from oryx.fileio import read_json_object, write_atomic
from oryx.model import OryxForCausalLM, count_parameters
from oryx.model.checkpoint import WEIGHTS_FILE, load_config
from oryx.pretrained import load_pretrained, save_pretrained
from oryx.routing import Learned, RouterConfig, Schedule, parse
from oryx.tracking import KIND_TAG, TRAIN_LOSS, Tracker, model_tags, start_run
from oryx.training import checkpoints as ckpt
from oryx.training.config import (
    NATIVE,
    RunConfig,
    SyntheticData,
    config_changes,
    describe_changes,
    read_yaml,
    resolved_precision,
)
from oryx.training.data import ensure_corpus, open_data
from oryx.training.distributed import Dist, no_sync, wrap
from oryx.training.optim import build_optimizer, lr_at, set_lr
from oryx.training.progress import ProgressReport

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "run_config.yaml"

Hook = Callable[["Trainer", int, float], None]


class Diverged(RuntimeError):
    """The loss or the gradient norm was not finite: the run stopped before applying that update."""


class Trainer:
    """Runs one RunConfig to `train.max_steps` (resuming when `train.out_dir` has a checkpoint; a config
    that differs from the checkpoint's is refused, see the module docstring).

    hooks: called as hook(trainer, step, loss) after every step (tests use them to act mid-run).
    """

    def __init__(self, config: RunConfig, config_path: str | Path | None = None, hooks: Sequence[Hook] = ()):
        self.config, self.config_path, self.hooks = config, config_path, list(hooks)
        self.out_dir = Path(config.train.out_dir)

    # ---- the run ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train to max_steps and return the summary (also written to out_dir/summary.json)."""
        self._join()
        try:
            resume = self._find_checkpoint()
            state = _read_state(resume) if resume else None
            changes = self._check_config(resume, state) if resume else {}   # before anything is written or logged
            if self.dist.main:
                self.tracker = self._start_tracking(state, changes)
            self._setup()
            step = self._load(resume, state) if resume else self._init_from()
            summary = self._loop(step, state, changes)
        except BaseException as e:
            self.tracker.close("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            self.dist.close()
        self.tracker.close()
        return summary

    def prepare(self) -> Trainer:
        """Everything `run` sets up before its first step, without checkpoints or tracking (for
        benchmarks and tests that drive `batch` and `update` themselves)."""
        self._join()
        self._setup()
        return self

    def _join(self) -> None:
        """Device and process group (torchrun's environment); tracking off until `run` starts it."""
        cfg = self.config.train
        self.dist = Dist.from_env(pick_device(cfg.device).type)          # nccl or gloo
        self.device = pick_device(cfg.device, self.dist.local_rank)     # this process's GPU
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        self.tracker = Tracker.disabled()

    def _find_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (rank 0 looks, cleans what killed runs left, tells the others)."""
        found = None
        if self.dist.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.clean_partial(self.out_dir)
            found = ckpt.latest_checkpoint(self.out_dir)
        if self.dist.world_size > 1:
            box = [str(found) if found else None]
            torch.distributed.broadcast_object_list(box, src=0)
            found = Path(box[0]) if box[0] else None
        return found

    def _check_config(self, checkpoint: Path, state: dict) -> dict[str, tuple]:
        """The run-config changes since `checkpoint` was saved that train.allow_config_change accepts ({}
        when none). Without the switch any change is an OryxError listing them; a model change is one
        with it too (the checkpoint's weights would not fit). Keys that may change: RESUMABLE_KEYS; the
        precision is compared as resolved on the device (`precision: auto` follows a device change)."""
        if self.config.train.max_steps < state["step"]:
            raise OryxError(f"train.max_steps={self.config.train.max_steps} is below the step of the checkpoint "
                            f"found in {self.out_dir} ({state['step']}): give at least {state['step']}, "
                            "or use a new train.out_dir")
        saved = self._saved_config(checkpoint)
        changes = config_changes(saved, self.config) if saved is not None else {}
        was = state.get("precision")   # absent in checkpoints of earlier versions: the setting compared
        now = resolved_precision(self.config.train.precision, self.device.type)
        if was is not None and was != now:
            changes[f"train.precision on {self.device.type}"] = (was, now)
        elif was is None and saved is not None and saved.train.precision != self.config.train.precision:
            changes["train.precision"] = (saved.train.precision, self.config.train.precision)
        accept = self.config.train.allow_config_change
        model = {k: v for k, v in changes.items() if k.startswith("model.")}
        if model:
            refused, way = (model if accept else changes), "a run's model cannot change: use a new train.out_dir"
        elif changes and not accept:
            refused, way = changes, ("use a new train.out_dir for a new run, or add train.allow_config_change=true "
                                     "to continue this run with the new values")
        else:
            return changes
        raise OryxError(f"{self.out_dir} holds a run saved with another config ({checkpoint / CONFIG_FILE}): "
                        f"{describe_changes(refused)}; {way}")

    def _saved_config(self, checkpoint: Path) -> RunConfig | None:
        """The run config `checkpoint` was saved with; None, with a warning, for a checkpoint written
        before checkpoints held one, or one whose config this version cannot read."""
        path = checkpoint / CONFIG_FILE
        problem = f"has no {CONFIG_FILE} (an older version wrote it)"
        if path.is_file():
            try:
                saved = RunConfig.model_validate(read_yaml(path))
                saved.model.build()
                return saved
            except (OryxError, ValidationError) as e:
                why = format_validation_error(e, first_only=True) if isinstance(e, ValidationError) else e
                problem = f"holds a {CONFIG_FILE} this version cannot read ({why})"
        if self.dist.main:
            print(f"oryx: warning: {checkpoint} {problem}; resuming without comparing the run config",
                  file=sys.stderr, flush=True)
        return None

    def _start_tracking(self, state: dict | None, changes: dict[str, tuple]) -> Tracker:
        """Fails fast (OryxError) when the store cannot be reached; a resumed run continues its MLflow run,
        sending again the steps it redoes only when a config change makes them differ."""
        t = self.config.tracking
        name = t.run_name or (Path(self.config_path).stem if self.config_path else self.out_dir.name)
        return start_run(
            t.experiment, uri=t.uri, run_name=name, tags={KIND_TAG: "train"}, enabled=t.enabled,
            resume_run_id=state.get("mlflow_run_id") if state else None, skip_held_steps=not changes,
            retry_interval_s=t.retry_seconds,
        )

    def _setup(self) -> None:
        """Data, model (seeded), wrapping, optimizer, schedules."""
        cfg, d = self.config, self.dist
        if d.main:
            ensure_corpus(cfg.data)
        d.barrier()
        self.data = open_data(cfg.data, cfg.train.seed)
        # the training window goes into the model's config: rolling evaluation defaults to it
        built = cfg.model.build(vocab_size=self.data.vocab_size)
        # learned routing (in training or validation) needs a router (default shape) calibrated for each
        # target it is run at: a learned schedule.val is checked here, not at the first validation
        specs = [built.default_schedule if cfg.schedule.train == NATIVE else cfg.schedule.train, *cfg.schedule.val]
        learned = [s for s in map(parse, specs) if isinstance(s, Learned)]
        update = {"train_seq_len": self.data.seq_len}
        if learned:
            router = built.router or RouterConfig()
            for schedule in learned:
                router = router.with_target(schedule.target)
            update["router"] = router
        self.model_config = built.model_copy(update=update)
        if self.data.seq_len > self.model_config.max_seq_len:
            raise OryxError(f"data sequences of {self.data.seq_len} positions exceed model.max_seq_len "
                            f"{self.model_config.max_seq_len}")
        self.micro, self.accum = self._batch_split()
        _seed_everything(cfg.train.seed)
        self.module = OryxForCausalLM(self.model_config).to(self.device)  # initialised on the CPU generator
        if learned:  # a fresh router starts at its budget (the training schedule's, when that is learned)
            self.module.router.start_at(learned[0].target)
        self.step_metrics: dict[str, float] = {}  # per-layer fractions and the router's budget loss of a step
        self.module.gradient_checkpointing = cfg.train.gradient_checkpointing
        self.model = wrap(self.module, cfg.train.strategy, d, self.device)
        if cfg.train.compile:
            self.model = torch.compile(self.model)
        self.optimizer = build_optimizer(self.module, cfg.optim)
        self.schedule, self.val_modes = self._schedules()
        bf16 = resolved_precision(cfg.train.precision, self.device.type) == "bf16"
        self.autocast = lambda: torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def _batch_split(self) -> tuple[int, int]:
        """(micro-batch size, accumulation steps) for this process."""
        t, world = self.config.train, self.dist.world_size
        micro = t.micro_batch_size or max(1, t.batch_size // world)
        if t.batch_size % (micro * world):
            raise OryxError(f"train.batch_size ({t.batch_size}) must be a multiple of processes ({world}) x "
                            f"train.micro_batch_size ({micro})")
        return micro, t.batch_size // (micro * world)

    def _schedules(self) -> tuple[Schedule | None, dict[str, Schedule | None]]:
        """The training schedule (None = native) and the validation modes, named for `val/loss/<name>`.

        A model whose layers own two mixers validates all_linear, all_attention, its training schedule
        ('schedule') and schedule.val; a single-mixer model only its own mode.
        """
        mc, spec = self.model_config, self.config.schedule
        if not mc.dual_layers:
            if spec.train != NATIVE or spec.val:
                raise OryxError(f"schedule: the {mc.family} model's layers own one mixer each; use "
                                f"schedule.train=native and no schedule.val")
            kinds = {"attention" in mc.layer_mixers(i) for i in range(mc.n_layers)}
            name = {frozenset({True}): "all_attention", frozenset({False}): "all_linear"}.get(frozenset(kinds), NATIVE)
            return None, {name: None}
        train = parse(mc.default_schedule if spec.train == NATIVE else spec.train)
        modes: dict[str, Schedule | None] = {"all_linear": parse("all_linear"), "all_attention": parse("all_attention")}
        if str(train) not in modes:
            modes["schedule"] = train
        for extra in spec.val:
            modes.setdefault(extra.replace(",", "_"), parse(extra))  # MLflow metric names allow no commas
        return (None if spec.train == NATIVE else train), modes

    # ---- checkpoints -------------------------------------------------------------------------------------
    def _init_from(self) -> int:
        """A fresh run's weights from train.init_from (a model directory or a training out_dir) when set,
        e.g. a mixed-trained model to which learned routing is added: every weight of the run's model must
        come from there, but for a router the source lacks (it keeps its fresh initialisation). Returns 0."""
        path = self.config.train.init_from
        if path is None:
            return 0
        source, _ = load_pretrained(path)
        ignore = {"router", "train_seq_len"}
        theirs, mine = source.config.model_dump(exclude=ignore), self.model_config.model_dump(exclude=ignore)
        if differ := [k for k in mine if theirs.get(k) != mine[k]]:
            raise OryxError(f"train.init_from {path}: its model differs from this run's in "
                            + "; ".join(f"{k}: {theirs.get(k)!r} -> {mine[k]!r}" for k in differ[:5]))
        state = source.state_dict()
        if self.module.router is None:
            state = {k: v for k, v in state.items() if not k.startswith("router.")}
        try:
            missing, _ = self.module.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a router of another shape
            raise OryxError(f"train.init_from {path}: its weights do not fit this run's model: "
                            f"{str(e).splitlines()[-1].strip()}") from None
        if bad := [k for k in missing if not k.startswith("router.")]:
            raise OryxError(f"train.init_from {path}: lacks weights {', '.join(bad[:5])}")
        return 0

    def calibrate(self) -> None:
        """Calibrate the learned router's thresholds on the validation inputs (held out from training)."""
        if self.module.router is not None:
            with self.autocast():  # the precision validation runs in: thresholds are sharp
                self.module.calibrate_router(x for x, _ in self.data.val_batches(self.micro))

    def _load(self, path: Path, state: dict) -> int:
        """Restore model, optimizer and RNG states from a checkpoint; returns its step."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        saved = load_config(path)
        if saved != self.model_config:
            raise OryxError(f"{self.out_dir} holds a run of a different model (see {path}/config.json); "
                            f"use a new train.out_dir or the run's original config")
        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.module, load_file(str(path / WEIGHTS_FILE)), options=options)
        optim = ckpt.unflatten_optimizer_state(load_file(str(path / ckpt.OPTIMIZER_FILE)), state["optimizer"])
        set_optimizer_state_dict(self.module, self.optimizer, optim, options=options)
        _set_rng_state(state["rng"])
        return int(state["step"])

    def _save(self, step: int) -> Path | None:
        """Gather full states (a collective under FSDP) and write the checkpoint on rank 0."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = get_model_state_dict(self.module, options=options)
        optim = get_optimizer_state_dict(self.module, self.optimizer, options=options)
        path = None
        if self.dist.main:
            path = ckpt.write_checkpoint(self.out_dir, step, lambda tmp: self._write_files(tmp, step, weights, optim))
            ckpt.prune(self.out_dir, self.config.train.keep_checkpoints)
        self.dist.barrier()
        return path

    def _write_files(self, tmp: Path, step: int, weights: dict, optim: dict) -> None:
        with torch.device("meta"):
            model = OryxForCausalLM(self.model_config)
        model.load_state_dict(weights, assign=True)
        save_pretrained(model, self.data.tokenizer, tmp)
        tensors, meta = ckpt.flatten_optimizer_state(optim)
        save_file(tensors, str(tmp / ckpt.OPTIMIZER_FILE))
        state = {
            "step": step,
            "data": {"seed": self.config.train.seed, "next_step": step + 1,
                     "sequences_seen": step * self.config.train.batch_size},
            "optimizer": meta,
            # the learning rate is a pure function of the step (optim.lr_at): this records where it is
            "scheduler": {"kind": "warmup+cosine", "step": step, "lr": self.optimizer.param_groups[0]["lr"],
                          "warmup_steps": self.config.optim.warmup_steps, "max_steps": self.config.train.max_steps},
            "rng": _rng_state(),
            "mlflow_run_id": self.tracker.run_id,
            "world_size": self.dist.world_size,
            "precision": resolved_precision(self.config.train.precision, self.device.type),
            "last": self.last,
        }
        (tmp / ckpt.STATE_FILE).write_text(json.dumps(state))
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))

    # ---- steps -------------------------------------------------------------------------------------------
    def _loop(self, step: int, state: dict | None, changes: dict[str, tuple]) -> dict:
        """Steps from `step` (the checkpoint's `state`, or 0 and None) to max_steps; `changes`: the config
        changes a resume accepted (`_check_config`)."""
        t, d = self.config.train, self.dist
        if d.main:
            self._log_start(step, resumed=state is not None, changes=changes)
        progress = ProgressReport(t.max_steps, step, t.log_every, enabled=d.main)
        if state is not None:
            progress.say(f"resumed from step {step} ({self.out_dir})")
        if changes:
            progress.say(f"with a changed config (train.allow_config_change): {describe_changes(changes, None)}")
        tokens_per_step = t.batch_size * self.data.seq_len
        val_every = t.val_every or t.checkpoint_every
        self.last = dict(state["last"]) if state else {"loss": None, "val": {}}  # the newest numbers
        last = self.last
        busy, tokens, started = 0.0, 0, time.perf_counter()  # tokens/s counts step time only
        try:
            while step < t.max_steps:
                step += 1
                set_lr(self.optimizer, lr_at(step, self.config.optim, t.max_steps))
                begin = time.perf_counter()
                loss, norm, attention = self.update(step, self.batch(step))
                busy += time.perf_counter() - begin
                tokens += tokens_per_step
                rate = tokens / max(busy, 1e-9)
                progress.update(step, loss, rate)
                last["loss"] = loss
                if step % t.log_every == 0 or step == t.max_steps:
                    self._log({TRAIN_LOSS: loss, "train/lr": self.optimizer.param_groups[0]["lr"],
                               "train/tokens_per_s": rate, "train/grad_norm": norm,
                               "train/attention_fraction": attention, **self.step_metrics}, step)
                    busy, tokens = 0.0, 0
                if step % val_every == 0 or step % t.checkpoint_every == 0 or step == t.max_steps:
                    self.calibrate()  # the thresholds validation and the checkpoint use
                if step % val_every == 0 or step == t.max_steps:
                    last["val"] = self.validate()
                    self._log(last["val"], step)
                    bad = [k for k, v in last["val"].items() if not math.isfinite(v)]
                    if bad:  # weights that give a non-finite validation loss are not worth a checkpoint
                        self._diverged(step, f"validation {bad[0]} {last['val'][bad[0]]}")
                    progress.say(f"step {step}: " + "  ".join(f"{k} {v:.4f}" for k, v in last["val"].items()))
                if step % t.checkpoint_every == 0 or step == t.max_steps:
                    path = self._save(step)
                    if path is not None:
                        progress.say(f"step {step}: checkpoint {path}")
                for hook in self.hooks:
                    hook(self, step, loss)
        finally:
            progress.close()
        return self._finish(step, last, time.perf_counter() - started)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | Schedule | None, int]:
        """This process's rows of step `step`'s global batch: input_ids, labels [b, T], modes [b, T] or None
        (native) or the schedule itself (a learned router decides in the model), and the number of targets
        in the whole global batch.

        The mode mask is drawn on the global batch, so its draws (and the generator's position after
        them) are the same for any number of processes.
        """
        t = self.config.train
        x, y = self.data.batch(step, t.batch_size)                      # [B, T], the global batch
        mask = self.schedule.mask(x) if self.schedule is not None and not self.schedule.needs_hidden else self.schedule
        targets = int((y[:, 1:] != IGNORE).sum())
        if targets == 0:
            raise OryxError(f"the batch of step {step} has no targets (every label is {IGNORE})")
        rows = self.dist.rows(t.batch_size)
        return x[rows], y[rows], (mask[rows] if isinstance(mask, torch.Tensor) else mask), targets

    def update(self, step: int, batch: tuple) -> tuple[float, float, float]:
        """One optimizer step on `batch` (from `batch(step)`); returns (loss, gradient norm, attention
        fraction); `step_metrics` gets each layer's attention fraction and, with a learned router, its budget
        loss. Raises Diverged before the update when the loss or the gradient norm is not finite."""
        x, y, mask, targets = batch
        d, L = self.dist, self.model_config.n_layers
        # loss sum, attention, positions, budget loss, then attention per layer
        totals = torch.zeros(4 + L, dtype=torch.float64, device=self.device)
        for i in range(self.accum):
            part = slice(i * self.micro, (i + 1) * self.micro)
            n = int((y[part, 1:] != IGNORE).sum())
            xb, yb = x[part].to(self.device), y[part].to(self.device)
            modes = mask[part].to(self.device) if isinstance(mask, torch.Tensor) else mask
            with no_sync(self.model, last=i == self.accum - 1):
                with self.autocast():
                    out = self.model(xb, modes=modes, labels=yb)
                # the model's loss is a mean over this micro-batch's targets; weigh it by their count so
                # the step's loss is the mean over the global batch (DDP/FSDP average over processes)
                loss_sum = out.loss * n if n else out.logits.sum() * 0.0
                budget = out.router_loss / self.accum if out.router_loss is not None else loss_sum * 0.0
                (loss_sum * (d.world_size / targets) + budget).backward()
            totals += torch.cat([torch.stack([loss_sum.detach().double(), out.modes.sum().double(),
                                              torch.tensor(out.modes.numel(), dtype=torch.float64, device=self.device),
                                              budget.detach().double()]),
                                 out.modes.sum((1, 2)).double()])
        d.sum(totals)
        clip = self.config.optim.grad_clip or math.inf  # inf: measure the norm, change nothing
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        # the step's numbers reach the host in one read
        loss_sum, attention, positions, budget, *layers, norm = torch.cat([totals, norm.double().reshape(1)]).tolist()
        loss = loss_sum / targets
        self.step_metrics = {f"train/attention_fraction/layer_{i}": a * L / positions for i, a in enumerate(layers)}
        if self.module.router is not None:
            self.step_metrics["train/router_budget_loss"] = budget / d.world_size
        if not math.isfinite(loss) or not math.isfinite(norm):
            self._diverged(step, f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {norm}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, norm, attention / positions

    def _diverged(self, step: int, what: str) -> None:
        # the newest published checkpoint (published whole by a rename, so complete); listing it costs
        # nothing, where latest_checkpoint would hash every file of it again
        latest = next(iter(ckpt.checkpoints(self.out_dir)), None)
        raise Diverged(f"step {step}: {what}; stopped without saving. "
                       + (f"The last good checkpoint is {latest}." if latest else "No checkpoint was written yet."))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """`val/loss/<mode>` (and `val/accuracy/<mode>` on synthetic tasks) over the validation set.

        Every process evaluates the whole set (the same numbers; FSDP needs all in every forward). Mode
        draws happen under a forked, fixed-seed generator: validation never shifts the training stream.
        """
        module, results = self.module, {}
        synthetic = isinstance(self.config.data, SyntheticData)
        module.eval()
        with torch.random.fork_rng(devices=[]):
            for name, schedule in self.val_modes.items():
                # sums stay on the device: one read per mode, not three per batch
                sums, row = torch.zeros(3, dtype=torch.float64, device=self.device), 0   # loss, targets, correct
                for x, y in self.data.val_batches(self.micro):
                    modes = self._val_mask(schedule, x, row) if schedule is not None else None
                    row += len(x)
                    x, y = x.to(self.device), y.to(self.device)
                    with self.autocast():
                        out = module(x, modes=modes, labels=y)
                    valid = y[:, 1:] != IGNORE
                    n = valid.sum()
                    sums[0] += torch.where(n > 0, out.loss.double() * n, 0.0)   # the loss of no target is nan
                    sums[1] += n
                    if synthetic:  # accuracy is reported on synthetic tasks only
                        sums[2] += ((out.logits[:, :-1].argmax(-1) == y[:, 1:]) & valid).sum()
                loss_sum, targets, correct = sums.tolist()
                results[f"val/loss/{name}"] = loss_sum / max(targets, 1)
                if synthetic:
                    results[f"val/accuracy/{name}"] = correct / max(targets, 1)
        module.train()
        return results

    def _val_mask(self, schedule: Schedule, x: torch.Tensor, first_row: int) -> torch.Tensor:
        """bool [b, T] for validation rows first_row..: each row drawn from its own seed, so a random
        schedule gives a row the same modes whatever the batch size (which depends on the processes). A
        learned router decides in the model (calibrated thresholds in eval mode): the schedule itself."""
        if schedule.needs_hidden:
            return schedule
        rows = []
        for i in range(len(x)):
            torch.manual_seed(self.config.train.seed * 1_000_003 + first_row + i)
            rows.append(schedule.mask(x[i:i + 1]))
        return torch.cat(rows).to(self.device)

    # ---- logging -----------------------------------------------------------------------------------------
    def _log_start(self, step: int, resumed: bool, changes: dict[str, tuple]) -> None:
        """Params, tags and the config as artifacts (a resumed run has them already: it gets tags saying
        where it resumed and which config `changes` it accepted there); metrics.jsonl cut back to the
        checkpoint's step (what came after it is redone). MLflow keeps the entries it holds past the
        checkpoint: the tracker does not send those steps again (oryx.tracking.tracker)."""
        path = self.out_dir / METRICS_FILE
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if _logged_step(line) <= step]
            write_atomic(path, lambda p: p.write_text("".join(line + "\n" for line in kept)))
        if resumed:
            accepted = {f"oryx.config_change.{step}": describe_changes(changes, None)} if changes else {}
            self.tracker.set_tags({"oryx.resumed_at_step": step, **accepted})
            if self.tracker.continued or not self.tracker.enabled:
                return  # else a new MLflow run (the old one is gone or in another store): it gets all below
        counts = count_parameters(self.module)
        self.tracker.log_params({
            **self.config.flat(self.model_config),
            "schedule": str(self.schedule) if self.schedule is not None else NATIVE,
            "params.total": counts["total"],
            "params.tied_fraction": counts["tied_fraction"],
            "data.vocab_size": self.data.vocab_size,
            "data.seq_len": self.data.seq_len,
            "world_size": self.dist.world_size,
        })
        mc = self.model_config
        self.tracker.set_tags({**model_tags(mc.family, mc.linear_kinds, mc.baseline),
                               "oryx.out_dir": str(self.out_dir.resolve())})
        if self.config_path is not None:
            self.tracker.log_artifact(self.config_path, "config")
        self.tracker.log_text(yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False),
                              f"config/{CONFIG_FILE}")

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if not self.dist.main:
            return
        self.tracker.log_metrics(metrics, step=step)
        with (self.out_dir / METRICS_FILE).open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    def _finish(self, step: int, last: dict, seconds: float) -> dict:
        summary = {
            "step": step,
            "loss": last["loss"],
            "val": last["val"],
            "checkpoint": str(ckpt.step_dir(self.out_dir, step)),
            "mlflow_run_id": self.tracker.run_id,
            "tracking_uri": self.tracker.uri,
            "seconds": seconds,
        }
        if self.dist.main:
            write_atomic(self.out_dir / SUMMARY_FILE, lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
        return summary


# ---- random states -------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """Every generator the run draws from, as JSON-able lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; infinity (dropped on resume) for a line a kill or a full disk
    left unfinished, or one that is not a record at all."""
    try:
        record = json.loads(line)
        return float(record["step"]) if isinstance(record, dict) else math.inf
    except (ValueError, KeyError, TypeError):
        return math.inf


STATE_KEYS = ("step", "optimizer", "rng", "last")


def _read_state(checkpoint: Path) -> dict:
    """The trainer state of a (verified) checkpoint; one written by another version of the trainer, or
    by hand, is a CheckpointError naming what it lacks."""
    path = checkpoint / ckpt.STATE_FILE
    state = read_json_object(path, CheckpointError, hint=": not a trainer state; use a new train.out_dir")
    if missing := [k for k in STATE_KEYS if k not in state]:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a state this trainer wrote; "
                              f"use a new train.out_dir")
    if not isinstance(state["step"], int) or isinstance(state["step"], bool) or state["step"] < 0:
        raise CheckpointError(f"{path} holds step {state['step']!r}, not a step count: not a state this trainer "
                              "wrote; use a new train.out_dir")
    return state
