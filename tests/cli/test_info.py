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


@pytest.mark.parametrize("family", list(presets.FAMILIES))
def test_info_says_what_each_family_is(family, capsys):
    assert main(["info", f"{family}-tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kind = presets.FAMILIES[family].kind
    assert report["linear_kinds"] == ([kind] if kind else []) and report["baseline"] == presets.FAMILIES[family].baseline


def test_info_for_a_checkpoint_directory(tmp_path, capsys):
    OryxForCausalLM(presets.get("gdn-tiny")).save_pretrained(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "tied fraction" in out and "recurrent state per sequence" in out


def test_info_list(capsys):
    assert main(["info", "--list"]) == 0
    assert capsys.readouterr().out.split() == presets.names()


def test_info_kinds_lists_every_kind_with_its_families():
    from rich.console import Console

    from oryx.cli.info import kinds_table
    from oryx.model.kinds import KINDS

    console = Console(width=400, record=True)
    console.print(kinds_table(presets.FAMILIES, KINDS))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 2}
    for name, kind in KINDS.items():
        assert kind.title in rows[name] and f"oryx-{name}" in rows[name] and kind.layout.__name__ in rows[name]
    assert main(["info", "--kinds"]) == 0


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

