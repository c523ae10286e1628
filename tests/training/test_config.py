"""Run configs: YAML + dotted overrides, and every kind of bad input named in the error."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from oryx.cli.main import main
from oryx.errors import OryxError, format_validation_error
from oryx.training.config import load_run_config
from tests.training.conftest import ROOT, oryx, write_config


def _error(path, overrides) -> str:
    """The one-line message a user would see for this config."""
    try:
        load_run_config(path, overrides)
    except ValidationError as e:
        return format_validation_error(e)
    except OryxError as e:
        return str(e)
    raise AssertionError("the config was accepted")


@pytest.mark.parametrize("overrides, expected", [
    pytest.param(["train.max_steps=abc"], "train.max_steps: Input should be a valid integer", id="wrong-type"),
    pytest.param(["model.d_model=abc"], "model.d_model: Input should be a valid integer", id="model-wrong-type"),
    pytest.param(["train.bogus=1"], "train.bogus: unknown key", id="unknown-train-key"),
    pytest.param(["model.bogus=1"], "model.bogus: unknown key", id="unknown-model-key"),
    pytest.param(["data.task.bogus=1"], "data.task.bogus: unknown key", id="unknown-task-key"),
    pytest.param(["bogus.x=1"], "bogus: unknown key", id="unknown-section"),
    pytest.param(["train.max_steps=0"], "train.max_steps: Input should be greater than or equal to 1", id="out-of-range"),
    pytest.param(["model.preset=oryx-nope-tiny"], "model.preset: unknown preset", id="unknown-preset"),
    pytest.param(["schedule.train=chunks:8"], "schedule.train", id="malformed-schedule"),
    pytest.param(["schedule.train=mixed:8:0.7:0.7"], "P_ALL_ATTN + P_ALL_LIN must be at most 1", id="mixed-probabilities"),
    pytest.param(["data.task.seed=3"], "data.task.seed is set by the trainer", id="trainer-owned-key"),
    pytest.param(["data.kind=audio"], "data: Input tag 'audio'", id="unknown-data-kind"),
    pytest.param(["train.max_steps"], "must be KEY=VALUE", id="override-without-value"),
    pytest.param(["train.max_steps.x=1"], "train.max_steps is 8, not a section", id="override-into-scalar"),
    pytest.param(["model.mixers=[attention, lstm]"], "model.mixers", id="bad-mixer"),
])
def test_bad_config_names_the_key(tmp_path, overrides, expected):
    assert expected in _error(write_config(tmp_path), overrides)


@pytest.mark.parametrize("files, expected", [
    pytest.param({}, "config file {dir}/run.yaml not found", id="missing"),
    pytest.param({"run.yaml": "model: [unclosed\n"}, "config file {dir}/run.yaml is not valid YAML", id="bad-yaml"),
    pytest.param({"run.yaml": "- a\n- b\n"}, "must hold a mapping, got list", id="not-a-mapping"),
    pytest.param({"run.yaml": "base: gone.yaml\n"}, "config file {dir}/gone.yaml not found", id="missing-base"),
    pytest.param({"run.yaml": "base: run.yaml\n"}, "includes itself through base:", id="base-loop"),
])
def test_bad_files_are_named(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert expected.format(dir=tmp_path) in _error(tmp_path / "run.yaml", [])


def test_overrides_and_base_files(tmp_path):
    """Overrides parse as YAML values; a base file sits under the file that names it."""
    base = write_config(tmp_path, "base.yaml")
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"base": "base.yaml", "train": {"max_steps": 5}, "model": {"d_model": 32}}))
    config = load_run_config(child, ["optim.betas=[0.8, 0.9]", "model.mixers=[attention, gdn]", "train.compile=true"])
    assert config.train.max_steps == 5 and config.train.batch_size == 8      # child over base
    assert config.optim.betas == (0.8, 0.9) and config.train.compile is True
    model = config.model.build(vocab_size=99)
    assert (model.d_model, model.vocab_size, model.mixers) == (32, 99, [["attention", "gdn"]])
    assert load_run_config(base).model.build().d_model == 64               # the preset's own width
    flat = config.flat(model)
    assert flat["model.d_model"] == 32 and flat["train.max_steps"] == 5 and flat["model.preset"] == "oryx-mamba2-tiny"
    assert "data.task.seed" not in flat                                     # set by the trainer, not the config


SIZES = {"smoke": "small", "gpu-small": "125m", "paper-1.4b": "1.4b"}
SHIPPED = sorted(p.relative_to(ROOT) for folder in SIZES for p in (ROOT / "runs" / folder).glob("*.yaml")
                 if not p.name.startswith("base"))


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_shipped_configs_load(path):
    config = load_run_config(ROOT / path)
    model = config.model.build()
    assert config.model.preset.endswith("-" + SIZES[path.parts[1]])
    two_mixers = len(model.layer_mixers(0)) == 2
    # mixed training (or a learned router) for Oryx only
    assert config.schedule.train.startswith(("mixed:", "learned:")) == two_mixers


def test_cli_prints_errors_without_traceback(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["train", str(path), "train.max_steps=abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train.max_steps: Input should be a valid integer") and "Traceback" not in err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert f"error: config file {tmp_path / 'missing.yaml'} not found" in capsys.readouterr().err


def test_cli_subprocess_exit_status(tmp_path):
    """The installed command, as a user runs it: exit status 2, one line, no traceback."""
    result = oryx("train", str(write_config(tmp_path)), "model.bogus=1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: model.bogus: unknown key" and "Traceback" not in result.stderr
