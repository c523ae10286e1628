"""Training on a prepared corpus (made on first use) and on the needle task; model directories that
carry the corpus's tokenizer."""

from __future__ import annotations

import pytest
import torch

from oryx.errors import OryxError
from oryx.pretrained import load_pretrained
from oryx.training.config import load_run_config
from oryx.training.data import open_data
from oryx.training.trainer import Trainer
from tests.training.conftest import write_config

TEXT = "\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog, {i * 7} times." for i in range(40))


def _corpus_config(tmp_path, **extra):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text(TEXT)
    data = {"kind": "corpus", "path": str(tmp_path / "corpus"), "seq_len": 32, "val_windows": 4,
            "prepare": {"recipe": "files", "val_fraction": 0.2,
                        "options": {"inputs": [str(tmp_path / "texts")], "document": "paragraph"}}, **extra}
    return write_config(tmp_path, data=data, model={"preset": "transformer-tiny"}, schedule={"train": "native"})


def test_corpus_is_prepared_and_its_tokenizer_saved(tmp_path):
    path = _corpus_config(tmp_path)
    summary = Trainer(load_run_config(path, ["train.max_steps=2", "train.checkpoint_every=2"]), path).run()
    assert (tmp_path / "corpus" / "manifest.json").is_file()
    assert set(summary["val"]) == {"val/loss/all_attention"}                 # text: loss only
    model, tokenizer = load_pretrained(tmp_path / "out")
    assert tokenizer.name == "byte" and model.config.vocab_size == tokenizer.vocab_size
    ids = torch.tensor([tokenizer.encode("Paragraph 3")])
    assert model.generate(ids, 5, temperature=0).shape == (1, ids.shape[1] + 5)


def test_corpus_batches_depend_on_seed_and_step_only(tmp_path):
    path = _corpus_config(tmp_path)
    config = load_run_config(path)
    Trainer(load_run_config(path, ["train.max_steps=1", "train.checkpoint_every=1"])).run()   # prepares it
    a, b = open_data(config.data, seed=0), open_data(config.data, seed=0)
    assert torch.equal(a.batch(5, 4)[0], b.batch(5, 4)[0]) and not torch.equal(a.batch(5, 4)[0], a.batch(6, 4)[0])
    assert not torch.equal(a.batch(5, 4)[0], open_data(config.data, seed=1).batch(5, 4)[0])


def test_missing_corpus_without_recipe_is_named(tmp_path):
    path = write_config(tmp_path, data={"kind": "corpus", "path": str(tmp_path / "nowhere")})
    with pytest.raises(OryxError, match=f"data.path {tmp_path / 'nowhere'} does not exist"):
        Trainer(load_run_config(path)).run()


def test_needle_task_trains(tmp_path):
    """A task whose config makes a grid of cells (two context lengths) still gives batch_size rows."""
    path = write_config(tmp_path, data={"kind": "niah", "val_examples": 6,
                                        "task": {"vocab_size": 64, "context_len": [24, 32], "depth": [0.0, 1.0]}})
    summary = Trainer(load_run_config(path, ["train.max_steps=2", "train.checkpoint_every=2"])).run()
    assert summary["step"] == 2 and 0 <= summary["val"]["val/accuracy/all_linear"] <= 1
    data = open_data(load_run_config(path).data, seed=0)
    x, y = data.batch(1, 8)
    assert x.shape == (8, 32) and (y != -100).any()


def test_a_grid_task_draws_only_what_a_batch_needs(monkeypatch):
    """A NIAH grid (2 lengths x 3 depths = 6 cells): a batch of 4 asks for one example per cell (6 rows,
    4 kept), not 4 per cell; batches are reproducible per step."""
    from oryx.data.synthetic.niah import NIAHConfig
    from oryx.training.data import TaskSource

    task = NIAHConfig(vocab_size=64, context_len=[24, 32], depth=[0.0, 0.5, 1.0], num_examples=1, seed=0)
    source = TaskSource(task, val_examples=6, seed=0)
    assert source.cells == 6
    asked = []
    real = NIAHConfig.generate
    monkeypatch.setattr(NIAHConfig, "generate", lambda self: asked.append(self.num_examples) or real(self))
    x, y = source.batch(3, 4)
    assert x.shape[0] == y.shape[0] == 4 and asked == [1]
    assert torch.equal(source.batch(3, 4)[0], x) and not torch.equal(source.batch(4, 4)[0], x)
    assert source.batch(5, 13)[0].shape[0] == 13 and asked[-1] == 3


def test_validation_numbers_are_the_plain_sums(tmp_path):
    """`Trainer.validate` equals a plain loop over the validation batches: the loss weighted by targets,
    and the accuracy of next-token argmax (MQAR, a synthetic task: accuracy reported), for each mode."""
    from oryx.data.synthetic.base import IGNORE

    trainer = Trainer(load_run_config(write_config(tmp_path), ["train.device=cpu"])).prepare()
    got = trainer.validate()
    for name, schedule in trainer.val_modes.items():
        loss, correct, targets, row = 0.0, 0, 0, 0
        for x, y in trainer.data.val_batches(trainer.micro):
            modes = trainer._val_mask(schedule, x, row) if schedule is not None else None
            row += len(x)
            with torch.no_grad():
                out = trainer.module(x, modes=modes, labels=y)
            valid = y[:, 1:] != IGNORE
            loss += float(out.loss) * int(valid.sum())
            correct += int(((out.logits[:, :-1].argmax(-1) == y[:, 1:]) & valid).sum())
            targets += int(valid.sum())
        assert got[f"val/loss/{name}"] == pytest.approx(loss / targets, rel=1e-6)
        assert got[f"val/accuracy/{name}"] == correct / targets
