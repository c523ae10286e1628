"""`oryx data ...`: the happy paths, and user mistakes as one `error:` line with exit status 2."""

from __future__ import annotations

import pytest

from oryx.cli.main import main
from tests.data.helpers import write_documents


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run `oryx ARGS` in-process -> (exit status, stdout, stderr)."""
    try:
        status = main(list(args))
    except SystemExit as e:  # typer's own usage errors
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def text_dir(tmp_path):
    write_documents(tmp_path / "text", n=4, seed=0)
    return tmp_path / "text"


def test_prepare_then_show(capsys, tmp_path, text_dir):
    status, out, err = run(capsys, "data", "prepare", "files", "--out", str(tmp_path / "c"), "--input",
                           str(text_dir / "*.txt"), "--val-fraction", "0.25", "--seed", "3")
    assert status == 0, err
    assert "train" in out and "val" in out and (tmp_path / "c" / "manifest.json").is_file()
    status, out, err = run(capsys, "data", "show", str(tmp_path / "c"), "--num", "1", "--tokens", "30")
    assert status == 0, err
    assert "doc_" in out and "tokenizer of 259 ids" in out


def test_tokenizer_command(capsys, tmp_path, text_dir):
    status, out, err = run(capsys, "data", "tokenizer", "--input", str(text_dir), "--vocab-size", "300",
                           "--out", str(tmp_path / "tok"))
    assert status == 0, err
    assert (tmp_path / "tok" / "tokenizer.json").is_file() and "BPE tokenizer" in out
    status, _, err = run(capsys, "data", "prepare", "files", "--out", str(tmp_path / "c"), "--input", str(text_dir),
                         "--tokenizer", str(tmp_path / "tok"))
    assert status == 0, err


@pytest.mark.parametrize("task,settings,expect", [
    pytest.param("mqar", ["--set", "vocab_size=64", "--set", "input_seq_len=32"], "labels at the answer positions", id="mqar"),
    pytest.param("niah", ["--set", "context_len=[40, 60]", "--set", "depth=0.5"], "needle_key", id="niah-grid"),
])
def test_show_task(capsys, task, settings, expect):
    status, out, err = run(capsys, "data", "show", task, "-n", "2", *settings)
    assert status == 0, err
    assert expect in out and f"{task} example 1" in out


BAD = [
    pytest.param(["prepare", "nope", "--out", "{tmp}/c"], "unknown recipe 'nope'", id="unknown-recipe"),
    pytest.param(["prepare", "files", "--out", "{tmp}/c", "--input", "{tmp}/none*.txt"], "matches no file", id="no-match"),
    pytest.param(["prepare", "files", "--out", "{tmp}/c", "--input", "{text}", "--dataset", "x"],
                 "takes no option 'dataset'", id="foreign-option"),
    pytest.param(["prepare", "files", "--out", "{tmp}/c", "--input", "{text}", "--document", "page"],
                 "document: Input should be", id="bad-choice"),
    pytest.param(["prepare", "files", "--out", "{tmp}/c", "--input", "{text}", "--val-fraction", "1.5"],
                 "val_fraction", id="bad-fraction"),
    pytest.param(["prepare", "files", "--out", "{tmp}/c", "--input", "{text}", "--tokenizer", "{tmp}/no-tok"],
                 "no-tok", id="missing-tokenizer"),
    pytest.param(["prepare", "hf", "--out", "{tmp}/c", "--dataset", "oryx-tests/absent"], "HF_DATASETS_OFFLINE",
                 id="hf-offline"),
    pytest.param(["tokenizer", "--input", "{text}", "--vocab-size", "10", "--out", "{tmp}/t"], ">= 259", id="tiny-vocab"),
    pytest.param(["show", "{tmp}"], "not a prepared corpus", id="show-not-a-corpus"),
    pytest.param(["show", "nothing-here"], "neither a corpus directory nor a task", id="show-unknown"),
    pytest.param(["show", "mqar", "--set", "num_kv_pairs=lots"], "num_kv_pairs", id="show-wrong-type"),
    pytest.param(["show", "mqar", "--set", "pairs=4"], "pairs: unknown key", id="show-unknown-key"),
    pytest.param(["show", "mqar", "--set", "novalue"], "KEY=VALUE", id="show-malformed-set"),
    pytest.param(["show", "niah", "--set", "depth=2"], "depth", id="show-bad-depth"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_exits_2_with_one_error_line(capsys, tmp_path, text_dir, args, message):
    args = [a.format(tmp=tmp_path, text=text_dir) for a in args]
    status, out, err = run(capsys, "data", *args)
    assert status == 2
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in out + err
    assert not (tmp_path / "c").exists()


def test_usage_errors_exit_2(capsys):
    status, _, err = run(capsys, "data", "prepare", "files")  # --out missing
    assert status == 2 and "Traceback" not in err
