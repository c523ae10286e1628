"""Reproduction presets: which models to train under one token budget, and how to evaluate them.

A preset is a YAML file, `runs/reproduce/<name>.yaml` (or any path given to `--preset`):

    description: ...
    device: cpu                       # cpu | cuda (a cuda preset refuses to start without CUDA)
    nproc: 1                          # training processes per model (torchrun when > 1)
    parallel: 1                       # models trained at once, each in its own process (small models)
    resources: "2 CPU cores, ..."     # what it needs, shown before it starts
    token_budget: 1500000             # training tokens per model, the same for every family
    train:
      - name: oryx-mamba2-mqar
        config: runs/smoke/oryx-mamba2-mqar.yaml     # an `oryx train` run config
        overrides: [model.d_model=64]                # dotted overrides, as on the command line (after the
                                                     # preset-wide `overrides:`)
    retrieval:
      - task: mqar
        models: [oryx-mamba2-mqar, transformer-mqar]
        schedules: ["all_linear", "last:{8,32}", "all_attention"]   # for models whose layers own both mixers
        n: 256
        options: {num_kv_pairs: 8}
    lm:
      - models: [oryx-mamba2-text]
        args: [--tasks, oryx_offline, --include_path, evals/tasks]   # passed to `oryx eval lm`
        schedules: [native, all_attention]      # for models whose layers own both mixers

Paths in a preset are relative to the repository root (the folder holding runs/), so a preset works from
any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oryx.errors import OryxError, format_validation_error
from oryx.fileio import read_yaml_mapping

PRESET_DIR = Path(__file__).resolve().parents[2] / "runs" / "reproduce"
ROOT = PRESET_DIR.parents[1]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$", description="the model's name in this preset (a folder name)")
    config: str = Field(description="`oryx train` run config, relative to the repository root")
    overrides: list[str] = Field(default_factory=list, description="dotted KEY=VALUE overrides of that config")


class RetrievalSpec(Strict):
    task: str = Field(description="retrieval task: mqar or niah (oryx.data.synthetic.TASKS)")
    models: list[str] = Field(min_length=1, description="names of trained models (train[].name) to evaluate")
    schedules: list[str] = Field(
        default_factory=lambda: ["all_linear", "all_attention"],
        description="schedule sweep for models whose layers own both mixers ('last:{8,32}' expands); "
        "single-mixer baselines run natively",
    )
    n: int = Field(256, ge=1, description="examples per sweep cell")
    options: dict = Field(default_factory=dict, description="task config fields (e.g. num_kv_pairs, input_seq_len)")
    log_modes: int = Field(8, ge=0, description="examples whose per-token modes are logged (parquet)")


class LMSpec(Strict):
    models: list[str] = Field(min_length=1, description="names of trained models to evaluate")
    args: list[str] = Field(min_length=1, description="`oryx eval lm` arguments besides --model_args (tasks, "
                            "--include_path, --limit, ...); a model trained on a corpus gets "
                            "--metadata corpus=<that corpus> unless the args give --metadata")
    schedules: list[str] = Field(default_factory=lambda: ["native"], description="one evaluation per schedule "
                                 "for models whose layers own both mixers; baselines run natively")


class Preset(Strict):
    name: str = Field("", description="set from the file name")
    description: str = Field(description="what the preset reproduces")
    device: Literal["cpu", "cuda"] = Field(description="cuda presets refuse to run without a CUDA device")
    nproc: int = Field(1, ge=1, description="training processes per model (torchrun when > 1)")
    parallel: int = Field(1, ge=1, description="models trained at once, each `oryx train` in its own process on "
                          "the same device (small models leave a GPU mostly idle); logs in <out>/logs/")
    resources: str = Field(description="what a run needs (devices, memory, time), printed at the start")
    token_budget: int = Field(ge=1, description="training tokens per model: max_steps = budget / tokens per step")
    overrides: list[str] = Field(default_factory=list, description="dotted overrides for every model's run "
                                 "config, before the model's own")
    train: list[TrainSpec] = Field(min_length=1, description="the models, trained in this order")
    retrieval: list[RetrievalSpec] = Field(default_factory=list, description="retrieval evaluations")
    lm: list[LMSpec] = Field(default_factory=list, description="lm-eval evaluations")

    @model_validator(mode="after")
    def _known_models(self) -> Preset:
        names = [t.name for t in self.train]
        if len(set(names)) != len(names):
            raise ValueError(f"train: model names must be unique, got {names}")
        if self.parallel > 1 and self.nproc > 1:
            raise ValueError("parallel > 1 trains several single-process models at once; it cannot be combined "
                             "with nproc > 1")
        for spec in [*self.retrieval, *self.lm]:
            unknown = [m for m in spec.models if m not in names]
            if unknown:
                raise ValueError(f"evaluates {', '.join(unknown)}, not among train[].name ({', '.join(names)})")
        return self


def preset_path(name: str) -> Path:
    """A preset name (runs/reproduce/<name>.yaml) or a path to a preset file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise OryxError(f"preset file {path} not found")
        return path
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise OryxError(f"unknown preset {name!r}; presets: {', '.join(known)} (or give a .yaml path)")
    return path


def load_preset(name: str) -> Preset:
    """The validated preset `name` (or file); errors name the file and the key."""
    path = preset_path(name)
    tree = read_yaml_mapping(path, "preset")
    try:
        return Preset.model_validate({**tree, "name": path.stem})
    except ValidationError as e:
        raise OryxError(f"preset {path}: {format_validation_error(e, first_only=True)}") from None


def resolve(path: str) -> Path:
    """A path of a preset: absolute as given, else relative to the repository root."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p
