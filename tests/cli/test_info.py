"""`oryx info` and the CLI's handling of user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from oryx import OryxForCausalLM, presets
from oryx.cli.main import main


def test_info_json_for_a_preset(capsys):
    assert main(["info", "oryx-mamba2-125m", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "oryx-mamba2"
    assert report["parameters"]["tied_fraction"] >= 0.9
    assert report["state_bytes"]["kv_cache_per_position"] > 0 and report["state_bytes"]["recurrent_per_sequence"] > 0


def test_info_for_a_checkpoint_directory(tmp_path, capsys):
    OryxForCausalLM(presets.get("gdn-tiny")).save_pretrained(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "tied fraction" in out and "recurrent state per sequence" in out


def test_info_list(capsys):
    assert main(["info", "--list"]) == 0
    assert capsys.readouterr().out.split() == presets.names()


@pytest.mark.parametrize(
    "args,message",
    [
        (["info", "oryx-mamba2-huge"], "unknown preset"),
        (["info", "oryx-mamba2-tiny", "--dtype", "int3"], "--dtype"),
        (["info"], "give a preset name"),
    ],
    ids=["unknown-preset", "bad-dtype", "nothing"],
)
def test_user_mistakes_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_console_script_reports_corrupt_checkpoint_without_traceback(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{")
    proc = subprocess.run([sys.executable, "-m", "oryx", "info", str(tmp_path / "m")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr

