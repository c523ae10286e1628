"""Helpers of the data tests: random text, a small corpus on disk, global-RNG snapshots."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def random_unicode(rng: np.random.Generator, length: int) -> str:
    """`length` random code points from every plane (surrogates excluded: they are not encodable)."""
    points = rng.integers(1, 0x110000, size=length * 2)
    points = points[(points < 0xD800) | (points > 0xDFFF)][:length]
    return "".join(map(chr, points))


def word_list(rng: np.random.Generator, size: int = 50) -> list[str]:
    """`size` random words of 2-7 letters (accented ones included, so some are multi-byte)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéü"))
    return ["".join(rng.choice(letters, size=rng.integers(2, 8))) for _ in range(size)]


def random_words(rng: np.random.Generator, n_words: int, words: list[str] | None = None) -> str:
    """Text of `n_words` words drawn from `words` (default: a fresh word_list), 12 to a line."""
    picked = rng.choice(words or word_list(rng), size=n_words)
    return "\n".join(" ".join(picked[i:i + 12]) for i in range(0, n_words, 12)) + "\n"


def write_documents(directory: Path, n: int, seed: int, n_words: int = 60) -> dict[Path, str]:
    """n text files doc_00.txt ... in `directory` -> {path: text}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    texts = {}
    for i in range(n):
        path = directory / f"doc_{i:02d}.txt"
        text = random_words(rng, n_words) + random_unicode(rng, 5)
        path.write_text(text, encoding="utf-8")
        texts[path] = text
    return texts


def global_rng_state() -> tuple:
    """Everything a generator could draw from by mistake: torch's, numpy's and Python's global RNGs."""
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def same_rng_state(a: tuple, b: tuple) -> bool:
    torch_a, numpy_a, python_a = a
    torch_b, numpy_b, python_b = b
    return (torch.equal(torch_a, torch_b) and python_a == python_b
            and all(np.array_equal(x, y) for x, y in zip(numpy_a, numpy_b)))
