"""The language-modelling study (issue 16) at toy size on the CPU: the shipped `gpu-lm` preset with its
models shrunk, on the `english` recipe's packaged stand-in corpus, one model per call (`--only`) as on
the device, then the report alone (`--report-only`) from the store: results/lm.csv, the table in the
paper's format (mean ± sd over seeds), the training curves. Then the preset's own checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from analysis.lm import LM_COLUMNS
from oryx.cli.main import main
from oryx.reproduce.preset import PRESET_DIR, load_preset
from tests.data.english_fixture import write_english_cache

MODELS = ["mamba2", "mamba2-seed1", "oryx-mamba2"]  # a baseline over two seeds, an Oryx model over schedules
TOY = ["model.d_model=32", "model.n_layers=2", "model.num_heads=2", "model.head_dim_v=16", "model.head_dim_qk=16",
       "model.mlp_hidden=32", "train.device=cpu", "train.precision=auto", "train.batch_size=4", "data.seq_len=128",
       "data.val_windows=4", "train.checkpoint_every=4", "train.val_every=4", "train.log_every=1",
       "optim.warmup_steps=1", "train.cpu_threads=1"]
STEPS, TOKENS = 8, 8 * 4 * 128
LM_SCHEDULES = ["chunks:128:0.5"]  # one shipped schedule besides the baseline's native run (lm-eval costs ~15 s a call)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The toy study's output dirs and its corpus; trained and evaluated once for the module."""
    tmp = tmp_path_factory.mktemp("lm-study")
    patch = pytest.MonkeyPatch()
    patch.setenv("ORYX_CACHE_DIR", str(write_english_cache(tmp / "cache")))
    patch.setenv("ORYX_RUNS_DIR", str(tmp / "runs"))
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patch.setenv("MPLBACKEND", "Agg")
    preset = yaml.safe_load((PRESET_DIR / "gpu-lm.yaml").read_text())
    corpus = tmp / "corpus"
    preset.update(device="cpu", token_budget=TOKENS,
                  overrides=[*TOY, f"data.path={corpus}", "data.prepare.tokenizer=bpe:300", "data.prepare.val_fraction=0.3"])
    preset["train"] = [t for t in preset["train"] if t["name"] in MODELS]
    (lm,) = preset["lm"]  # the shipped tasks
    preset["lm"] = [{**lm, "models": ["mamba2", "oryx-mamba2"], "args": [*lm["args"], "--limit", "2"],
                     "schedules": LM_SCHEDULES}]
    path = tmp / "gpu-lm.yaml"  # the file's name is the preset's: experiment reproduce-gpu-lm
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    for model in MODELS:  # one model per call, each into its own output dir, one store
        assert main(["reproduce", "--preset", str(path), "--only", model, "--out", str(tmp / "out" / model)]) == 0
    assert main(["reproduce", "--preset", str(path), "--report-only", "--out", str(tmp / "report")]) == 0
    yield tmp, corpus, path
    patch.undo()


def test_lm_csv_has_every_number(study):
    tmp, corpus, _ = study
    frame = pd.read_csv(tmp / "report" / "results" / "lm.csv")
    assert tuple(frame.columns) == LM_COLUMNS
    assert set(frame["model"]) == {"mamba2", "oryx-mamba2"}
    assert sorted(frame[frame["model"] == "mamba2"]["seed"].unique()) == [0, 1]
    assert (frame["tokens"] == TOKENS).all() and (frame["params"] > 0).all() and frame["mlflow_run"].notna().all()
    val = frame[(frame["task"] == "validation") & (frame["metric"] == "loss")]
    oryx_modes = set(val[val["model"] == "oryx-mamba2"]["schedule"])
    assert oryx_modes == {"all_linear", "all_attention", "mixed:128:0.1:0.1", "chunks:128:0.1", "chunks:128:0.5"}
    assert set(val[val["model"] == "mamba2"]["schedule"]) == {"native"}
    manifest = pd.read_json(corpus / "manifest.json", typ="series")["splits"]["val"]
    bpb = frame[(frame["task"] == "validation") & (frame["metric"] == "bits_per_byte")]
    merged = val.merge(bpb, on=["model", "seed", "schedule"], suffixes=("", "_bpb"))
    assert len(merged) == len(val)
    expected = merged["value"] * manifest["tokens"] / manifest["bytes"] / math.log(2)
    assert merged["value_bpb"].to_numpy() == pytest.approx(expected.to_numpy())
    lm = frame[frame["task"].str.startswith("oryx_")]
    assert set(lm["task"]) == {"oryx_cloze", "oryx_heldout", "oryx_passkey"}
    assert set(lm[lm["model"] == "oryx-mamba2"]["schedule"]) == set(LM_SCHEDULES)
    assert set(lm[lm["model"] == "mamba2"]["schedule"]) == {"native"}
    assert not lm["metric"].str.contains("stderr").any()
    heldout = lm[(lm["task"] == "oryx_heldout") & (lm["metric"] == "bits_per_byte")]
    assert heldout["value"].between(0, 16).all() and len(heldout) == 1 + len(LM_SCHEDULES)
    train = frame[(frame["task"] == "train") & (frame["metric"] == "tokens_per_s")]
    assert len(train) == 3 and (train["value"] > 0).all()


def test_study_table_and_curves(study):
    tmp, _, _ = study
    table = pd.read_csv(tmp / "report" / "tables" / "lm_study.csv")
    mamba2 = table[table["model"] == "mamba2"].iloc[0]
    assert mamba2["seeds"] == 2 and mamba2["schedule"] == "native"
    assert mamba2["validation loss sd"] > 0  # two seeds: a spread (different inits and data orders)
    assert table[table["model"] == "oryx-mamba2"]["seeds"].eq(1).all()
    assert table[table["model"] == "oryx-mamba2"]["validation loss sd"].isna().all()
    markdown = (tmp / "report" / "tables" / "lm_study.md").read_text()
    assert "±" in markdown and "oryx-mamba2" in markdown
    assert (tmp / "report" / "figures" / "lm_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_only_names_a_model_of_the_preset(study, capsys):
    tmp, _, path = study
    assert main(["reproduce", "--preset", str(path), "--only", "gpt-5", "--out", str(tmp / "x")]) == 2
    err = capsys.readouterr().err
    assert "--only gpt-5: not a model of preset 'gpu-lm'" in err and "Traceback" not in err


def test_gpu_lm_families_are_parameter_matched():
    """Every family of the shipped preset within 2% of the others' parameter count (vocab 8192, as the
    corpus's BPE); the seed-1 models are the seed-0 configs."""
    from oryx.presets import count_total
    from oryx.reproduce.preset import resolve
    from oryx.training.config import load_run_config

    preset = load_preset("gpu-lm")
    counts, families = {}, set()
    for spec in preset.train:
        config = load_run_config(resolve(spec.config), spec.overrides)
        model = config.model.build().model_copy(update={"vocab_size": 8192})
        counts[spec.name], families = count_total(model), families | {model.family}
        assert config.data.path == "runs/data/english-bpe8k" and config.data.seq_len == 1024
    assert families == {"transformer", "mamba2", "gdn", "hybrid", "oryx-mamba2", "oryx-gdn"}
    assert max(counts.values()) / min(counts.values()) < 1.02
    (lm,) = preset.lm
    assert lm.models == [t.name for t in preset.train]
    assert lm.schedules == ["all_linear", "chunks:128:0.1", "chunks:128:0.5", "all_attention"]
    assert lm.args[lm.args.index("--tasks") + 1] == "oryx_offline"
    steps = preset.token_budget // (64 * 1024)
    assert steps == 2048 and preset.token_budget / max(counts.values()) > 8  # tokens per parameter
