"""Kill-and-resume: a real `oryx train` process is SIGKILLed (once while it writes a checkpoint, once at
a random moment), the same command is rerun, and the run ends exactly as an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import torch

from oryx.training import checkpoints as ckpt
from tests.training.conftest import oryx, oryx_env, write_config

STEPS = 16
OVERRIDES = [f"train.max_steps={STEPS}", "train.checkpoint_every=2", "train.val_every=8", "train.keep_checkpoints=3"]


def _start(config, out):
    return subprocess.Popen([sys.executable, "-m", "oryx", "train", str(config), *OVERRIDES, f"train.out_dir={out}"],
                            cwd=config.parent, env=oryx_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(process, condition, timeout=240.0) -> bool:
    """SIGKILL `process` as soon as condition() holds; False if it ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.0002)
    raise AssertionError(f"the run ended (status {process.wait()}) before it could be killed: {process.stderr.read()}")


def _saving(out):
    """True while a checkpoint after the first is being written (its temporary folder exists)."""
    folder = out / ckpt.CHECKPOINTS_DIR
    return lambda: (folder.is_dir() and any(p.name.startswith(ckpt.TMP_PREFIX) for p in folder.iterdir())
                    and bool(ckpt.checkpoints(out)))


def _last_step(out) -> int:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return json.loads(lines[-1])["step"] if lines and lines[-1].endswith("}") else 0


def _losses(out):
    return [r["train/loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "train/loss" in r]


def test_sigkill_and_resume_is_exact(tmp_path):
    config = write_config(tmp_path)
    reference = oryx("train", str(config), *OVERRIDES, f"train.out_dir={tmp_path / 'ref'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr

    # 1: killed while a checkpoint is being written (its temporary folder exists). The writer may finish
    # its rename between the poll that saw the folder and the signal (a tiny model's checkpoint takes
    # milliseconds), so the kill is tried on fresh runs until one lands inside a write
    for attempt in range(5):
        out = tmp_path / f"killed-{attempt}"
        _kill_when(_start(config, out), _saving(out))
        left = {p.name for p in (out / ckpt.CHECKPOINTS_DIR).iterdir()}
        if any(name.startswith(ckpt.TMP_PREFIX) for name in left):
            break
    assert any(name.startswith(ckpt.TMP_PREFIX) for name in left), f"no kill landed inside a write: {left}"
    assert ckpt.checkpoints(out)
    for path in ckpt.checkpoints(out):
        ckpt.verify(path)                               # whatever is named step-... is complete
    # 2: resumed, then killed at a random moment: a random step after the resumed one, plus a random
    # fraction of a step (which may fall in a save, a validation or the middle of a step)
    rng = random.Random(torch.initial_seed())
    target = rng.randint(int(ckpt.checkpoints(out)[0].name[5:]) + 1, STEPS - 4)
    extra = rng.uniform(0.0, 0.05)
    reached: list[float] = []

    def moment() -> bool:
        if not reached and _last_step(out) >= target:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] >= extra

    _kill_when(_start(config, out), moment)
    # 3: the same command again, to the end
    final = oryx("train", str(config), *OVERRIDES, f"train.out_dir={out}", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert "resumed from step" in final.stderr

    ref, got = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "ref", out))
    assert got["loss"] == ref["loss"] and got["val"] == ref["val"]          # bit for bit (JSON floats round-trip)
    assert _losses(out) == _losses(tmp_path / "ref") and len(_losses(out)) == STEPS
    last = ckpt.step_dir(out, STEPS)
    assert (last / "model.safetensors").read_bytes() == (ckpt.step_dir(tmp_path / "ref", STEPS) / "model.safetensors").read_bytes()
    assert (last / ckpt.OPTIMIZER_FILE).read_bytes() == (ckpt.step_dir(tmp_path / "ref", STEPS) / ckpt.OPTIMIZER_FILE).read_bytes()
    assert not any(p.name.startswith((ckpt.TMP_PREFIX, ckpt.TRASH_PREFIX)) for p in (out / ckpt.CHECKPOINTS_DIR).iterdir())


def test_rerun_of_a_finished_run_changes_nothing(tmp_path):
    config = write_config(tmp_path, train={"max_steps": 2, "checkpoint_every": 2,
                                           "log_every": 1, "batch_size": 4, "device": "cpu"})
    assert oryx("train", str(config), cwd=tmp_path).returncode == 0
    weights = (ckpt.step_dir(tmp_path / "out", 2) / "model.safetensors").read_bytes()
    again = oryx("train", str(config), cwd=tmp_path)
    assert again.returncode == 0 and "resumed from step 2" in again.stderr
    assert (ckpt.step_dir(tmp_path / "out", 2) / "model.safetensors").read_bytes() == weights


def test_resume_after_a_torn_metrics_line(tmp_path):
    """A kill (or a full disk) in the middle of writing metrics.jsonl leaves half a line: the rerun drops it
    and resumes, instead of failing on it."""
    config = write_config(tmp_path, train={"max_steps": 2, "checkpoint_every": 2, "log_every": 1,
                                           "batch_size": 4, "device": "cpu"})
    assert oryx("train", str(config), cwd=tmp_path).returncode == 0
    metrics = tmp_path / "out" / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write('{"step": 3, "train/lo')
    config = write_config(tmp_path, train={"max_steps": 3, "checkpoint_every": 2, "log_every": 1,
                                           "batch_size": 4, "device": "cpu"})
    again = oryx("train", str(config), cwd=tmp_path)
    assert again.returncode == 0 and "resumed from step 2" in again.stderr, again.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert max(r["step"] for r in records) == 3 and all("train/lo" not in r for r in records)
