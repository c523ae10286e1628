"""Run configs: typed sections (model, data, schedule, optim, train, tracking), loaded from YAML with
dotted overrides from the command line.

    config = load_run_config("runs/smoke/oryx-mamba2-mqar.yaml", ["train.max_steps=100", "model.d_model=128"])

A YAML file may name `base: other.yaml` (relative to itself): that file is loaded first and this one is
merged over it, key by key. Override values are read as YAML scalars or lists (`100` is an int, `true` a
bool, `[a, b]` a list). An unknown key, a wrong type or a missing file is an error naming the key or
file (OryxError or a pydantic ValidationError, printed by the command line as `error: ...`).

A resumed run compares its config with the one its checkpoint was saved with (`config_changes`): only
the keys in RESUMABLE_KEYS may differ, unless train.allow_config_change is set (oryx.training.trainer).
"""

from __future__ import annotations

import json
import operator
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_core import ValidationError as CoreValidationError

from oryx import presets
from oryx.data.synthetic import TASKS, SyntheticConfig
from oryx.errors import OryxError
from oryx.fileio import read_yaml_mapping
from oryx.model.config import OryxConfig
from oryx.routing import NATIVE, parse


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- model ---------------------------------------------------------------------------------------------
class ModelSection(BaseModel):
    """A preset name plus OryxConfig field overrides, or (without a preset) a full OryxConfig.

    Every key besides `preset` is an OryxConfig field (model.d_model, model.mixers, ...). The vocabulary
    always comes from the data and replaces `vocab_size`.
    """

    model_config = ConfigDict(extra="allow")

    preset: str | None = Field(None, description="a preset name (`oryx info --list`); other keys override its fields")

    def fields(self) -> dict[str, Any]:
        """The OryxConfig fields given in the section."""
        return dict(self.model_extra or {})

    def build(self, vocab_size: int | None = None) -> OryxConfig:
        """The model's config (vocab_size replaced when given); bad keys raise errors located at model.*."""
        fields = self.fields()
        unknown = sorted(set(fields) - set(OryxConfig.model_fields))
        if unknown:
            raise _located("model", [{"type": "extra_forbidden", "loc": (k,), "input": fields[k]} for k in unknown])
        if vocab_size is not None:
            fields["vocab_size"] = vocab_size
        try:
            if self.preset is None:
                return OryxConfig(**fields)
            return presets.get(self.preset, **fields)
        except ValidationError as e:
            raise _located("model", e.errors()) from None
        except OryxError as e:
            raise OryxError(f"model.preset: {e}") from None


def _located(section: str, errors: list[dict]) -> CoreValidationError:
    """A ValidationError whose locations are prefixed with `section` (so messages name model.d_model)."""
    return _located_lines([{**e, "loc": (section, *e["loc"])} for e in errors])


def _located_lines(errors: list[dict]) -> CoreValidationError:
    """A RunConfig ValidationError made of these error dicts (type, loc, input, ctx)."""
    lines = [{"type": e["type"], "loc": e["loc"], "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
             for e in errors]
    return CoreValidationError.from_exception_data("RunConfig", lines)


# ---- data ----------------------------------------------------------------------------------------------
class PrepareSpec(Section):
    """How to make a missing corpus (`oryx data prepare RECIPE --out PATH ...`)."""

    recipe: str = Field(description="data recipe: files, shakespeare, hf, english (oryx/data/recipes)")
    tokenizer: str = Field("byte", description="byte, a tokenizer directory, or bpe:N (trained on the train split)")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of the documents held out for validation")
    seed: int = Field(0, ge=0, description="seed of the train/validation split")
    options: dict[str, Any] = Field(default_factory=dict, description="the recipe's own options")


class CorpusData(Section):
    """Random windows of a prepared corpus (oryx/data/corpus.py)."""

    kind: Literal["corpus"] = Field(description="corpus: text from a prepared corpus directory")
    path: str = Field(description="the prepared corpus directory (relative to the working directory)")
    prepare: PrepareSpec | None = Field(None, description="prepare the corpus this way when `path` does not exist")
    seq_len: int = Field(256, ge=2, description="positions per training window")
    val_windows: int = Field(64, ge=1, description="validation windows: the first N of the val split")


class SyntheticData(Section):
    """Examples of a synthetic task, drawn afresh for every step from (train.seed, step)."""

    val_examples: int = Field(256, ge=1, description="validation examples (one fixed draw, never trained on)")

    #: task fields the trainer sets per step (from train.seed, the step and the batch size)
    TRAINER_OWNED: ClassVar[tuple[str, ...]] = ("seed", "num_examples")


def _task_section(kind: str, task: type[SyntheticConfig]) -> type[SyntheticData]:
    """The data section of one synthetic task: kind: <name>, task: <its config fields>."""
    return create_model(
        f"{task.__name__}Data",
        __base__=SyntheticData,
        kind=(Literal[kind], Field(description=f"{kind}: the synthetic task {task.__name__}")),
        task=(task, Field(default_factory=task, description=f"{task.__name__} fields (oryx/data/synthetic)")),
    )


# one section per registered task, so a new task in oryx.data.synthetic.TASKS is trainable at once
DataSection = Annotated[
    reduce(operator.or_, [CorpusData, *(_task_section(kind, task) for kind, task in TASKS.items())]),
    Field(discriminator="kind"),
]


# ---- schedule, optimiser, training, tracking -----------------------------------------------------------
class ScheduleSection(Section):
    train: str = Field(
        NATIVE,
        description="modes while training: an oryx.routing spec (mixed:CHUNK:P_ALL_ATTN:P_ALL_LIN, chunks:64:0.25, "
        "learned:TARGET[:WEIGHT] (a learned router with a budget), ...) or native (each layer's own mixer; the model's default_schedule where a layer owns two)",
    )
    val: list[str] = Field(
        default_factory=list,
        description="more schedules to validate, besides all_linear, all_attention and the training schedule",
    )

    @field_validator("train")
    @classmethod
    def _check_train(cls, value: str) -> str:
        return value if value == NATIVE else _trainable(value)

    @field_validator("val")
    @classmethod
    def _check_val(cls, value: list[str]) -> list[str]:
        return [_trainable(v) for v in value]


def _trainable(spec: str) -> str:
    """The canonical form of a schedule the trainer can run: not an oracle (the trainer's batches carry
    no role annotation; `oracle:` schedules are for `oryx eval retrieval`)."""
    schedule = parse(spec)
    if schedule.needs_annotation:
        raise ValueError(f"{schedule} is an oracle: it reads an evaluation task's role annotation, which training "
                         "batches do not carry; evaluate it with `oryx eval retrieval`")
    return str(schedule)


class OptimSection(Section):
    lr: float = Field(3e-4, gt=0, description="peak learning rate (AdamW)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the cosine decays to lr * min_lr_ratio at max_steps")
    warmup_steps: int = Field(100, ge=0, description="linear warmup from 0 to lr over this many steps")
    weight_decay: float = Field(0.1, ge=0, description="decoupled weight decay, on matrices (2-D and up) only")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    grad_clip: float = Field(1.0, ge=0, description="clip the global gradient norm to this (0 = no clipping)")


class TrainSection(Section):
    max_steps: int = Field(ge=1, description="optimizer steps of the whole run")
    out_dir: str = Field(description="checkpoints, metrics.jsonl and summary.json go here")
    checkpoint_every: int = Field(500, ge=1, description="save a checkpoint every N steps (and at the end)")
    seed: int = Field(0, ge=0, description="seeds the model init, the data order and the mode draws")
    batch_size: int = Field(16, ge=1, description="sequences per optimizer step, all processes together")
    micro_batch_size: int | None = Field(
        None, ge=1, description="sequences per forward in one process (gradient accumulation makes up the "
        "rest); default batch_size / processes")
    val_every: int | None = Field(None, ge=1, description="validation every N steps and at the end; default checkpoint_every")
    log_every: int = Field(10, ge=1, description="metrics to MLflow and metrics.jsonl every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="complete checkpoints kept (the newest)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available")
    cpu_threads: int | None = Field(
        None, ge=1, description="PyTorch threads per process on the CPU (default PyTorch's, one per core); "
        "1 is much faster when other processes compete for the cores")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 autocast on CUDA, fp32 on CPU; weights and optimizer stay fp32")
    compile: bool = Field(False, description="torch.compile the model")
    gradient_checkpointing: bool = Field(False, description="recompute each block in the backward pass")
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="with several processes: DDP, or FSDP2 (fully_shard)")
    init_from: str | None = Field(
        None, description="start a fresh run from this model's weights (a model directory or a training out_dir; "
        "e.g. a mixed-trained model, to add learned routing): the same model but for the router")
    allow_config_change: bool = Field(
        False, description="resume even where this config differs from the one the checkpoint was saved with "
        "(the changes are recorded as an MLflow tag); without it such a resume is an error")


class TrackingSection(Section):
    enabled: bool = Field(True, description="log to MLflow")
    uri: str | None = Field(None, description="tracking URI; default $MLFLOW_TRACKING_URI, else sqlite under runs/")
    experiment: str = Field("oryx", description="MLflow experiment name")
    run_name: str | None = Field(None, description="MLflow run name; default the config file's name")
    retry_seconds: float = Field(30.0, ge=0, description="while the store does not answer, retry it this often")


class RunConfig(Section):
    """A training run: `oryx train FILE.yaml [key=value ...]`."""

    model: ModelSection = Field(description="the model: preset and/or OryxConfig fields")
    data: DataSection = Field(description="what to train on: a corpus or a synthetic task")
    schedule: ScheduleSection = Field(default_factory=ScheduleSection, description="modes in training and validation")
    optim: OptimSection = Field(default_factory=OptimSection, description="AdamW and the learning-rate schedule")
    train: TrainSection = Field(description="steps, batch, checkpoints, devices")
    tracking: TrackingSection = Field(default_factory=TrackingSection, description="MLflow")

    def flat(self, model: OryxConfig | None = None) -> dict[str, Any]:
        """Dotted keys -> values, for MLflow params. `model.*` lists every field of the model's resolved
        OryxConfig (`model`, e.g. with the data's vocabulary; default the section's own build)."""
        data = self.model_dump(mode="json")
        data["model"] = {"preset": self.model.preset, **(model or self.model.build()).model_dump(mode="json")}
        if isinstance(self.data, SyntheticData):
            for key in SyntheticData.TRAINER_OWNED:
                data["data"]["task"].pop(key)
        return flatten(data)


# ---- resuming ------------------------------------------------------------------------------------------
#: Keys a resumed run may change without train.allow_config_change (a dotted key, or a section ending in
#: "."). They say how long the run goes, how often it reports and saves, where it lives, runs and reports,
#: and how a step's arithmetic is laid out on the hardware: none changes what a step trains on, what it
#: computes or what a metric measures. Every other key does (model, data, schedule.train, optim, seed,
#: batch_size, precision: bf16 autocast changes every step's numbers), and continuing a run with a new
#: value would mix two experiments in one run.
RESUMABLE_KEYS = (
    "train.max_steps",              # extending (or ending early) a run; the cosine decay follows the new end
    "train.out_dir",                # where the run was found: the same run under another spelling or place
    "train.checkpoint_every",       # how often it is saved
    "train.keep_checkpoints",       # how many saves are kept
    "train.log_every",              # how often metrics are taken, not what they measure
    "train.val_every",              # how often validation runs (on the same examples)
    "train.device",                 # where it runs: a run may move to other hardware
    "train.cpu_threads",            # how many threads compute the same numbers
    "train.micro_batch_size",       # the same global batch split into other forwards (accumulation)
    "train.gradient_checkpointing",  # recomputation: memory for time, the same gradients
    "train.compile",                # the same model, compiled or not
    "train.strategy",               # DDP or FSDP: the same update, distributed another way
    "train.allow_config_change",    # this switch itself, meant for one invocation
    "train.precision",              # compared as resolved on the device instead (the trainer's check)
    "schedule.val",                 # more (or fewer) validation modes: curves added, the others unchanged
    "tracking.",                    # where metrics go, under which names, how an outage is retried
)
UNSET = object()  # the value of a key one of two configs lacks


def resolved_precision(precision: str, device_type: str) -> str:
    """'bf16' or 'fp32': what train.precision means on a device of `device_type` (auto: bf16 autocast on
    CUDA, fp32 elsewhere). A resume compares this, since the device may change and auto follows it."""
    return "bf16" if precision == "bf16" or (precision == "auto" and device_type == "cuda") else "fp32"


def is_resumable(key: str) -> bool:
    """Whether a resumed run may change `key` (a dotted run-config key) freely: see RESUMABLE_KEYS."""
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS)


def config_changes(saved: RunConfig, current: RunConfig) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved value, current value)} for each key that differs and is not resumable, in
    the config's order; UNSET where a config lacks the key. Model keys are the resolved OryxConfig fields
    (RunConfig.flat), so spelling out a preset's own value is no change."""
    old, new = saved.flat(), current.flat()
    pairs = {key: (old.get(key, UNSET), new.get(key, UNSET)) for key in {**old, **new}}
    return {key: pair for key, pair in pairs.items() if pair[0] != pair[1] and not is_resumable(key)}


def describe_changes(changes: dict[str, tuple[Any, Any]], limit: int | None = 5) -> str:
    """'optim.lr: 0.003 -> 0.001; train.seed: 0 -> 1 and 3 more' (values as JSON; all with limit=None)."""
    shown = list(changes.items())[:limit]
    text = "; ".join(f"{key}: {_show(old)} -> {_show(new)}" for key, (old, new) in shown)
    rest = len(changes) - len(shown)
    return f"{text} and {rest} more" if rest else text


def _show(value: Any) -> str:
    return "(unset)" if value is UNSET else json.dumps(value)


# ---- loading -------------------------------------------------------------------------------------------
def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1} (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping, with its `base:` file merged under it."""
    path = Path(path)
    if path.resolve() in _seen:
        raise OryxError(f"config file {path} includes itself through base:")
    tree = read_yaml_mapping(path, "config file")
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise OryxError(f"{path}: base must be a file name, got {base!r}")
    return merge(read_yaml(path.parent / base, (*_seen, path.resolve())), tree)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursively for mappings (a list or scalar in `top` replaces base's)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_override(tree: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a nested mapping (value parsed as YAML)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise OryxError(f"override {item!r} must be KEY=VALUE, e.g. train.max_steps=100")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise OryxError(f"override {item!r}: the value is not valid YAML: {e}") from None
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise OryxError(f"override {item!r}: {'.'.join(parts[:i + 1])} is {child!r}, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['a.b=1', 'depth=[0.1, 0.9]'] -> {'a': {'b': 1}, 'depth': [0.1, 0.9]} (values read as YAML)."""
    tree: dict[str, Any] = {}
    for item in items:
        apply_override(tree, item)
    return tree


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run config. The model section is built once here, so a bad model
    key fails now, before any data is prepared."""
    tree = read_yaml(path)
    for item in overrides:
        apply_override(tree, item)
    try:
        config = RunConfig.model_validate(tree)
    except ValidationError as e:
        raise _without_tags(e) from None
    if isinstance(config.data, SyntheticData):
        owned = [k for k in SyntheticData.TRAINER_OWNED if k in config.data.task.model_fields_set]
        if owned:
            raise OryxError(f"data.task.{owned[0]} is set by the trainer (from train.seed, train.batch_size and "
                            f"data.val_examples); remove it")
    config.model.build()
    return config


def _without_tags(e: ValidationError) -> CoreValidationError:
    """The same errors without the union tag pydantic puts in locations (data.mqar.task.x -> data.task.x)."""
    kinds = {"corpus", *TASKS}
    lines = []
    for err in e.errors():
        loc = err["loc"]
        if len(loc) > 1 and loc[0] == "data" and loc[1] in kinds:
            loc = (loc[0], *loc[2:])
        lines.append({**err, "loc": loc})
    return _located_lines(lines)
