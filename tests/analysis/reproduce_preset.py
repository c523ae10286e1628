"""The reduced preset of the reproduce tests: every kind of stage once, on tiny models, in well under two
minutes (one Oryx model on MQAR with a two-schedule sweep, one Transformer on a small text corpus with one
lm-eval task), written into a test's tmp dir with absolute paths."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORDS = ["the", "of", "and", "to", "in", "that", "is", "was", "he", "for", "it", "with", "as", "his", "on",
         "be", "at", "by", "had", "not", "are", "but", "from", "or", "have", "they", "which", "one", "you", "were"]
# max_steps and out_dir are required by a run config; the preset's token budget and --out replace them
TRAIN = {"log_every": 1, "checkpoint_every": 4, "device": "cpu", "batch_size": 8, "max_steps": 1, "out_dir": "x"}


def _text(path: Path, paragraphs: int = 40) -> Path:
    """A small seeded text of short lines (the corpus of the text model)."""
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 10))).capitalize() + "."
             for _ in range(paragraphs * 6)]
    path.write_text("\n\n".join("\n".join(lines[i:i + 6]) for i in range(0, len(lines), 6)))
    return path


def write_test_preset(tmp: Path, token_budget: int = 4096) -> Path:
    """runs configs + preset under `tmp`; returns the preset file."""
    text = _text(tmp / "text.txt")
    corpus = tmp / "corpus"
    mqar = {"model": {"preset": "oryx-mamba2-tiny"},
            "data": {"kind": "mqar", "task": {"vocab_size": 64, "num_kv_pairs": 4, "input_seq_len": 32},
                     "val_examples": 16},
            "schedule": {"train": "mixed:8:0.25:0.25"}, "optim": {"lr": 3e-3, "warmup_steps": 2},
            "train": TRAIN}
    lm = {"model": {"preset": "transformer-tiny"},
          "data": {"kind": "corpus", "path": str(corpus), "seq_len": 64, "val_windows": 4,
                   "prepare": {"recipe": "files", "options": {"inputs": [str(text)], "document": "paragraph"},
                               "val_fraction": 0.2}},
          "optim": {"lr": 3e-3, "warmup_steps": 2}, "train": TRAIN}
    for name, config in (("mqar.yaml", mqar), ("text.yaml", lm)):
        (tmp / name).write_text(yaml.safe_dump(config))
    preset = {
        "description": "test preset: each stage once",
        "device": "cpu",
        "resources": "1 CPU core, under a minute",
        "token_budget": token_budget,
        "train": [{"name": "oryx-mqar", "config": str(tmp / "mqar.yaml")},
                  {"name": "transformer-text", "config": str(tmp / "text.yaml")}],
        "retrieval": [{"task": "mqar", "models": ["oryx-mqar"], "schedules": ["all_linear", "last:{16}"],
                       "n": 16, "options": {"num_kv_pairs": 4, "input_seq_len": 32, "vocab_size": 64},
                       "log_modes": 2}],
        "lm": [{"models": ["transformer-text"],
                "args": ["--include_path", str(REPO / "evals" / "tasks"), "--tasks", "oryx_cloze", "--limit", "8",
                         "--batch_size", "8"]}],  # --metadata corpus=<its training corpus>: added by reproduce
    }
    path = tmp / "test-preset.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    return path
