"""The data layer: tokenizers, prepared corpora (memory-mapped token files) and synthetic tasks.
Knows no model.

    from oryx.data import TokenCorpus, load_tokenizer, prepare
    from oryx.data.synthetic import MQARConfig, NIAHConfig

Modules: tokenizers.py (Tokenizer, ByteTokenizer, train_bpe, load_tokenizer), corpus.py (TokenCorpus,
the corpus directory layout), prepare.py (prepare) with recipes/ (files, shakespeare, hf), files.py
(paths and globs), synthetic/ (MQAR, needle in a haystack).
"""

from oryx.data.corpus import CorpusManifest, TokenCorpus
from oryx.data.prepare import prepare
from oryx.data.tokenizers import ByteTokenizer, HFTokenizer, Tokenizer, load_tokenizer, train_bpe

__all__ = [
    "ByteTokenizer",
    "CorpusManifest",
    "HFTokenizer",
    "TokenCorpus",
    "Tokenizer",
    "load_tokenizer",
    "prepare",
    "train_bpe",
]
