"""Model directories: exact round trip, and clear errors for missing or corrupt files."""

from __future__ import annotations

import json

import pytest
import torch

from oryx import CheckpointError, OryxForCausalLM, presets


@pytest.fixture
def saved(tmp_path):
    model = OryxForCausalLM(presets.get("oryx-gdn-tiny", query_tying="lowrank")).eval()
    model.save_pretrained(tmp_path / "m")
    return model, tmp_path / "m"


def test_round_trip_is_exact(saved):
    model, path = saved
    loaded = OryxForCausalLM.from_pretrained(path).eval()
    assert loaded.config == model.config
    ids = torch.randint(0, 256, (2, 20))
    modes = torch.rand(2, 2, 20) < 0.5
    assert torch.equal(model(ids, modes=modes).logits, loaded(ids, modes=modes).logits)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]  # no pickle, no temp files


def test_load_with_dtype(saved):
    _, path = saved
    loaded = OryxForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in loaded.parameters())


def _truncate(path):
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])


def _garble_header(path):
    (path / "model.safetensors").write_bytes(b"\xff" * 64)


def _drop_weights(path):
    (path / "model.safetensors").unlink()


def _drop_config(path):
    (path / "config.json").unlink()


def _bad_json(path):
    (path / "config.json").write_text("{not json")


def _unknown_key(path):
    cfg = json.loads((path / "config.json").read_text())
    cfg["wings"] = 2
    (path / "config.json").write_text(json.dumps(cfg))


def _other_shape(path):
    cfg = json.loads((path / "config.json").read_text())
    cfg["d_model"] = 32
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "damage,message",
    [
        (_truncate, "corrupt or truncated"),
        (_garble_header, "corrupt or truncated"),
        (_drop_weights, "has no model.safetensors"),
        (_drop_config, "has no config.json"),
        (_bad_json, "not valid JSON"),
        (_unknown_key, "wings"),
        (_other_shape, "does not match its config.json"),
    ],
    ids=["truncated", "garbled", "no-weights", "no-config", "bad-json", "unknown-key", "shape-mismatch"],
)
def test_damaged_checkpoint_gives_clear_error(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        OryxForCausalLM.from_pretrained(path)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        OryxForCausalLM.from_pretrained(tmp_path / "nowhere")
