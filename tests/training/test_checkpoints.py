"""Checkpoints: atomic, verified against their manifest, skipped when damaged; model directories."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from oryx import OryxForCausalLM, presets
from oryx.data.tokenizers import ByteTokenizer
from oryx.errors import CheckpointError
from oryx.pretrained import load_pretrained, resolve_model_dir, save_pretrained
from oryx.training import checkpoints as ckpt
from oryx.training.config import load_run_config
from oryx.training.trainer import Trainer
from tests.training.conftest import write_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 8-step run (checkpoints at steps 4 and 8) on a corpus-free synthetic task."""
    directory = tmp_path_factory.mktemp("run")
    config = load_run_config(write_config(directory))
    summary = Trainer(config).run()
    return directory / "out", summary


def test_run_output(trained):
    out, summary = trained
    assert [p.name for p in ckpt.checkpoints(out)] == ["step-00000008", "step-00000004"]
    manifest = ckpt.verify(out / "checkpoints" / "step-00000008")
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", ckpt.OPTIMIZER_FILE, ckpt.STATE_FILE}
    state = json.loads((out / "checkpoints" / "step-00000008" / ckpt.STATE_FILE).read_text())
    assert state["step"] == 8 and state["data"]["next_step"] == 9 and "torch" in state["rng"]
    assert summary["step"] == 8 and summary["checkpoint"].endswith("step-00000008")
    assert json.loads((out / "summary.json").read_text())["loss"] == summary["loss"]


@pytest.mark.parametrize("damage, message", [
    pytest.param(lambda d: (d / ckpt.MANIFEST_FILE).unlink(), "incomplete: no manifest.json", id="no-manifest"),
    pytest.param(lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing", id="missing-file"),
    pytest.param(lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-7]),
                 "bytes, the manifest says", id="truncated"),
    pytest.param(lambda d: _flip_byte(d / ckpt.OPTIMIZER_FILE), "does not match its sha256", id="bit-flip"),
    pytest.param(lambda d: (d / ckpt.MANIFEST_FILE).write_text("{not json"), "corrupt manifest.json", id="bad-manifest"),
    pytest.param(lambda d: (d / ckpt.MANIFEST_FILE).write_text("[]"), "corrupt manifest.json", id="manifest-a-list"),
    pytest.param(lambda d: (d / ckpt.MANIFEST_FILE).write_text('{"files": ["model.safetensors"]}'),
                 "corrupt manifest.json", id="files-a-list"),
])
def test_damaged_checkpoint_is_skipped(trained, tmp_path, damage, message, capsys):
    out = tmp_path / "out"
    shutil.copytree(trained[0], out)
    newest = out / "checkpoints" / "step-00000008"
    damage(newest)
    with pytest.raises(CheckpointError, match=message):
        ckpt.verify(newest)
    assert ckpt.latest_checkpoint(out) == out / "checkpoints" / "step-00000004"
    assert message.split(":")[0] in capsys.readouterr().err
    assert resolve_model_dir(out) == out / "checkpoints" / "step-00000004"
    with pytest.raises(CheckpointError, match=str(newest)):
        load_pretrained(newest)


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_write_is_atomic_and_prunes(tmp_path):
    """A failure while writing leaves only a .tmp- folder (cleaned later), never a step- folder."""
    def boom(directory):
        (directory / "half").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ckpt.write_checkpoint(tmp_path, 3, boom)
    assert ckpt.checkpoints(tmp_path) == [] and ckpt.latest_checkpoint(tmp_path) is None
    ckpt.clean_partial(tmp_path)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    for step in (1, 2, 3):
        ckpt.write_checkpoint(tmp_path, step, lambda d, s=step: (d / "x.txt").write_text(str(s)))
    ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step-00000003", "step-00000002"]


def test_load_pretrained(trained, tmp_path):
    out, _ = trained
    model, tokenizer = load_pretrained(out)
    assert isinstance(model, OryxForCausalLM) and not model.training and tokenizer is None  # MQAR: no text
    model2, _ = load_pretrained(out / "checkpoints" / "step-00000008")
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), n
    # a model directory with a tokenizer
    tiny = OryxForCausalLM(presets.get("oryx-mamba2-tiny", vocab_size=259))
    save_pretrained(tiny, ByteTokenizer(), tmp_path / "m")
    loaded, tok = load_pretrained(tmp_path / "m", dtype=torch.float64)
    assert tok.name == "byte" and loaded.embed.weight.dtype == torch.float64
    assert torch.equal(loaded.embed.weight.float(), tiny.embed.weight)


@pytest.mark.parametrize("make, message", [
    pytest.param(lambda p: None, "no such file or directory", id="missing"),
    pytest.param(lambda p: p.mkdir(), "neither a model directory", id="empty-dir"),
    pytest.param(lambda p: (p / "checkpoints").mkdir(parents=True), "no complete checkpoint", id="no-checkpoint"),
])
def test_load_pretrained_errors_name_the_path(tmp_path, make, message):
    path = tmp_path / "model"
    make(path)
    with pytest.raises(CheckpointError, match=message) as e:
        load_pretrained(path)
    assert str(path) in str(e.value)


def test_loading_for_evaluation_hashes_each_file_once(trained, monkeypatch):
    """`evals.loading.load_checkpoint` resolves (and so verifies) the checkpoint once, then loads it."""
    import oryx.training.checkpoints as checkpoints
    from evals.loading import load_checkpoint

    out, _ = trained
    hashed = []
    real = checkpoints.sha256
    monkeypatch.setattr(checkpoints, "sha256", lambda path: hashed.append(path.name) or real(path))
    loaded = load_checkpoint(out, device="cpu")
    assert hashed and len(hashed) == len(set(hashed)), hashed
    assert not loaded.model.training


@pytest.mark.parametrize(("text", "message"), [
    pytest.param('{"step": 2}', "lacks optimizer, rng, last", id="old-format"),
    pytest.param("[1, 2", "is not valid JSON .*: not a trainer state", id="not-json"),
    pytest.param('["step", "optimizer", "rng", "last"]', "is not a JSON object .*: not a trainer state", id="a-list"),
    pytest.param('{"step": "8", "optimizer": {}, "rng": {}, "last": {}}', "holds step '8', not a step count",
                 id="step-not-a-count"),
])
def test_a_foreign_trainer_state_is_named(tmp_path, text, message):
    from oryx.training.trainer import _read_state

    (tmp_path / "trainer_state.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        _read_state(tmp_path)
