"""`oryx bench kernels --resume`: rows already in the result file are kept, only missing ones run.

The GPU measurements themselves are replaced by stand-ins here (they need CUDA; the H200 run is in
benchmarks/results); what is tested is the bookkeeping around them, including a run killed mid-way.
"""

from __future__ import annotations

import json

import pytest

from oryx.bench import kernels
from oryx.errors import OryxError


@pytest.fixture
def fake_gpu(monkeypatch):
    """Stand-ins for the CUDA measurements; records which points were measured."""
    calls = []

    def run_point(family, N, D, layout, fractions, patterns):
        calls.append(("point", N, D, layout))
        if N == 999:
            raise KeyboardInterrupt  # the run is killed at this point
        base = {"family": family, "N": N, "D": D, "layout": layout, "transformer_fwdbwd_ms": 10.0,
                "linear_path_fwdbwd_ms": 1.0, "linear_fwdbwd_ms": 3.0, "pattern": "-", "fwd_ms": 1.0,
                "attention_part_speedup": None, "ratio_to_ideal": 1.0, "ideal_fwdbwd_ms": 3.0,
                "speedup_vs_full_attention_fwdbwd": 1.0}
        return [{**base, "fraction": f, "fwdbwd_ms": 3.0 + 7.0 * f} for f in fractions]

    def memory_rows(family, N, D, layout):
        calls.append(("memory", N, D, layout))
        return [{"family": family, "N": N, "D": D, "layout": layout, "mixer": "linear", "peak_fwdbwd_MiB": 1.0}]

    def decode_rows(family, D, layout, contexts):
        calls.append(("decode", tuple(contexts)))
        return [{"family": family, "D": D, "layout": layout, "context": c, "mode": m, "per_token_ms": 1.0}
                for c in contexts for m in ("linear", "attention")]

    monkeypatch.setattr(kernels, "run_point", run_point)
    monkeypatch.setattr(kernels, "memory_rows", memory_rows)
    monkeypatch.setattr(kernels, "decode_rows", decode_rows)
    return calls


def _run(tmp_path, lengths, contexts=(1024,), resume=True, fractions=(0.0, 1.0)):
    kernels.run_and_report("oryx-mamba2", list(lengths), [2048], ["hd128"], list(fractions), ["scattered"],
                           list(contexts), tmp_path, "k", resume)
    return json.loads((tmp_path / "k.json").read_text())


def test_a_resumed_run_measures_only_what_is_missing(tmp_path, fake_gpu):
    first = _run(tmp_path, [2048])
    assert [c[0] for c in fake_gpu] == ["point", "memory", "decode"]
    fake_gpu.clear()
    second = _run(tmp_path, [2048, 8192], contexts=(1024, 4096))
    # 8192 is new (measured); 2048 kept; memory is measured at the new longest length; one new context
    assert fake_gpu == [("point", 8192, 2048, "hd128"), ("memory", 8192, 2048, "hd128"), ("decode", (4096,))]
    assert sorted({r["N"] for r in second["rows"]}) == [2048, 8192]
    kept = [r for r in second["rows"] if r["N"] == 2048]
    assert kept == first["rows"]          # the earlier rows, with the provenance of their run
    for r in second["rows"] + second["decode"] + second["peak_memory"]:
        assert set(r["measured"]) >= {"date", "command", "torch"}


def test_a_new_fraction_remeasures_its_point(tmp_path, fake_gpu):
    _run(tmp_path, [2048])
    fake_gpu.clear()
    out = _run(tmp_path, [2048], fractions=(0.0, 0.1, 1.0))
    assert ("point", 2048, 2048, "hd128") in fake_gpu
    assert sorted(r["fraction"] for r in out["rows"]) == [0.0, 0.1, 1.0]   # replaced, not duplicated


def test_a_killed_run_keeps_finished_points_and_a_plain_run_starts_over(tmp_path, fake_gpu):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, [4096, 999])             # 4096 first (longest first is 4096 > 999), then killed
    assert {r["N"] for r in json.loads((tmp_path / "k.json").read_text())["rows"]} == {4096}
    fake_gpu.clear()
    _run(tmp_path, [4096])
    assert ("point", 4096, 2048, "hd128") not in fake_gpu
    fake_gpu.clear()
    _run(tmp_path, [4096], resume=False)          # the default: measure everything
    assert ("point", 4096, 2048, "hd128") in fake_gpu


def test_a_corrupt_result_file_is_named(tmp_path, fake_gpu):
    (tmp_path / "k.json").write_text("{not json")
    with pytest.raises(OryxError, match=r"k\.json is not a result file.*without --resume"):
        _run(tmp_path, [2048])
    (tmp_path / "k.json").write_text(json.dumps({"rows": [{"N": 1}]}))
    with pytest.raises(OryxError, match=r"lacks"):
        _run(tmp_path, [2048])
