"""The `!function` hooks of the task YAMLs in this folder (lm-eval loads this file by its path).

Each `custom_dataset` hook receives lm-eval's metadata (the model_args merged with --metadata), reads
`corpus` from it where it needs held-out text, and builds its documents with evals.taskdata.
"""

from __future__ import annotations

import re

from evals.taskdata import cloze_docs, heldout_docs, mqar_docs, passkey_docs


def _test_split(docs: list[dict]) -> dict:
    import datasets

    return {"test": datasets.Dataset.from_list(docs)}


def cloze(**metadata) -> dict:
    return _test_split(cloze_docs(metadata.get("corpus")))


def heldout(**metadata) -> dict:
    return _test_split(heldout_docs(metadata.get("corpus")))


def passkey(**metadata) -> dict:
    return _test_split(passkey_docs(metadata.get("corpus")))


def mqar(**metadata) -> dict:
    return _test_split(mqar_docs())


def heldout_results(doc: dict, results: list) -> dict:
    """Rolling log-likelihood -> the (loglikelihood, count) pairs of lm-eval's perplexity metrics
    (as its wikitext task: words split on whitespace, UTF-8 bytes)."""
    (loglikelihood,) = results
    words = len(re.split(r"\s+", doc["text"].strip()))
    size = len(doc["text"].encode("utf-8"))
    return {"word_perplexity": (loglikelihood, words), "byte_perplexity": (loglikelihood, size),
            "bits_per_byte": (loglikelihood, size)}
