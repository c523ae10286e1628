"""`oryx generate` on a saved model with a tokenizer, and its user errors."""

from __future__ import annotations

import pytest

from oryx import OryxForCausalLM, presets
from oryx.cli.main import main
from oryx.data.tokenizers import ByteTokenizer
from oryx.pretrained import save_pretrained


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "model"
    save_pretrained(OryxForCausalLM(presets.get("oryx-mamba2-tiny")), ByteTokenizer(), path)
    return path


def test_generate_prints_text_and_attention_fraction(model_dir, capsys):
    assert main(["generate", str(model_dir), "--prompt", "To be, or not", "--max-new-tokens", "8",
                 "--schedule", "last:4", "--temperature", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("To be, or not")
    # 13 prompt positions (last 4 in attention) + 7 decoded steps (each in attention under last:4)
    assert "attention fraction 0.550 over 20 positions x 2 layers" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prompt", "a", "--ids", "1"], "exactly one of"),
        (["--ids", "1,x"], "comma-separated integers"),
        (["--ids", "5000"], "out of range"),
        (["--prompt", "ab", "--schedule", "chunks:0:1"], "SIZE"),
    ],
    ids=["both-prompts", "bad-ids", "id-out-of-range", "bad-schedule"],
)
def test_user_errors(model_dir, args, message, capsys):
    assert main(["generate", str(model_dir), "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "none"), "--ids", "1"]) == 2
    assert "error:" in capsys.readouterr().err
