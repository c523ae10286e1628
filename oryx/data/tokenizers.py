"""Tokenizers: the built-in byte tokenizer, byte-level BPE trained locally, any local HF tokenizer.

    tok = load_tokenizer("byte")              # or a directory written by `Tokenizer.save`, or any
    ids = tok.encode("héllo")                 # directory holding a Hugging Face tokenizer.json
    tok.decode(ids) == "héllo"
    bpe = train_bpe(["some text", ...], vocab_size=512)
    bpe.save("runs/my-model")                 # tokenizer.json + oryx_tokenizer.json

Every tokenizer has `name`, `vocab_size` (ids are 0..vocab_size-1), `bos_id`, `eos_id`, `pad_id`
(int or None), `encode`, `decode` and `save`. `encode` never adds special tokens: callers place
bos/eos themselves (a prepared corpus ends every document with eos).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

from oryx.errors import OryxError
from oryx.fileio import read_json_object, write_atomic

#: The marker file `save` writes beside the tokenizer's own files: name and special ids.
MARKER_FILE = "oryx_tokenizer.json"
#: The Hugging Face `tokenizers` file (BPE and any other HF tokenizer).
HF_FILE = "tokenizer.json"
#: Text of the special tokens of the tokenizers built here (BPE vocab entries; byte decode output).
SPECIAL_TOKENS = {"bos": "<|bos|>", "eos": "<|eos|>", "pad": "<|pad|>"}

# Names a plain HF tokenizer.json may give its special tokens, most common first (GPT-2, Llama, BERT).
_GUESSES = {
    "eos": ("<|endoftext|>", "</s>", "<|eos|>", "<eos>", "<|end_of_text|>", "[SEP]"),
    "bos": ("<|bos|>", "<s>", "<bos>", "<|begin_of_text|>", "[CLS]"),
    "pad": ("<|pad|>", "<pad>", "[PAD]"),
}


class Tokenizer(ABC):
    """Text <-> token ids. Subclasses set `name`, `vocab_size`, `bos_id`, `eos_id`, `pad_id`."""

    name: str
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int | None

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added."""

    @abstractmethod
    def _decode(self, ids: list[int], skip_special: bool) -> str:
        """Text of ids already checked to lie in 0..vocab_size-1."""

    @abstractmethod
    def _save_files(self, directory: Path) -> None:
        """Write the tokenizer's own files (besides the marker) into `directory`."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """encode() of each text (subclasses may batch it faster)."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids` (a list, array or 1-d tensor). Special tokens are dropped unless skip_special
        is False; an id outside 0..vocab_size-1 is an OryxError."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise OryxError(f"token id {bad[0]} out of range for the {self.name} tokenizer (vocab_size {self.vocab_size})")
        return self._decode(ids, skip_special)

    @property
    def special_ids(self) -> dict[str, int]:
        """{'bos': id, 'eos': id, 'pad': id} (pad left out when there is none)."""
        ids = {"bos": self.bos_id, "eos": self.eos_id, "pad": self.pad_id}
        return {k: v for k, v in ids.items() if v is not None}

    def info(self) -> dict:
        """What the marker file (and a corpus manifest) records about this tokenizer."""
        return {"name": self.name, "vocab_size": self.vocab_size, "bos_id": self.bos_id,
                "eos_id": self.eos_id, "pad_id": self.pad_id}

    def save(self, directory: str | Path) -> Path:
        """Write this tokenizer's files into `directory` (created if missing). Other files there are left
        alone; each file is written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        write_atomic(directory / MARKER_FILE, lambda p: p.write_text(json.dumps(self.info(), indent=2) + "\n"))
        return directory

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, specials={self.special_ids})"


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes, no training, no files.

    Layout: ids 0..255 are the bytes themselves (id = byte value), then 256 = bos, 257 = eos,
    258 = pad; vocab_size 259. Decoding replaces invalid UTF-8 (a cut multi-byte character) by U+FFFD.

        >>> tok = ByteTokenizer()
        >>> tok.encode("hé!")
        [104, 195, 169, 33]
        >>> tok.decode([104, 195, 169, 33, 257], skip_special=False)
        'hé!<|eos|>'
    """

    name = "byte"
    vocab_size = 259
    bos_id = 256
    eos_id = 257
    pad_id = 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        names = {v: SPECIAL_TOKENS[k] for k, v in self.special_ids.items()}
        parts: list[str] = []
        run: list[int] = []  # consecutive byte ids, decoded together so multi-byte characters survive
        for i in [*ids, None]:
            if i is not None and i < 256:
                run.append(i)
                continue
            parts.append(bytes(run).decode("utf-8", errors="replace"))
            run = []
            if i is not None and not skip_special:
                parts.append(names[i])
        return "".join(parts)

    def _save_files(self, directory: Path) -> None:
        """The byte tokenizer is fully described by its marker file."""


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers.Tokenizer` (BPE trained by `train_bpe`, or any local tokenizer.json).

    Literal special-token text in the input (e.g. '<|eos|>' inside a document) is encoded as plain
    text, never as the special id, so a document cannot inject an end of sequence.
    """

    def __init__(self, tokenizer, name: str, bos_id: int, eos_id: int, pad_id: int | None):
        self._tok = tokenizer
        self._tok.encode_special_tokens = True
        self.name = name
        # max id + 1 rather than the vocabulary's length: added tokens may leave holes in the id range
        self.vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special)

    def _save_files(self, directory: Path) -> None:
        write_atomic(directory / HF_FILE, lambda p: self._tok.save(str(p)))


def train_bpe(
    source: Iterable[str] | Sequence[os.PathLike],
    vocab_size: int,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> HFTokenizer:
    """Train a byte-level BPE tokenizer (GPT-2 style, offline) with HF `tokenizers`.

    source: texts (an iterable of str) or files (a sequence of pathlib.Path, read as UTF-8).
    vocab_size: at most this many ids; ids 0, 1, 2 are bos, eos, pad, then the 256 byte symbols, then
    the merges, so it must be >= 259. A small text may yield fewer merges than asked for.
    """
    from tokenizers import Tokenizer as HFCore
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from oryx.data.files import read_text

    if not isinstance(vocab_size, int) or vocab_size < 259:
        raise OryxError(f"BPE vocab_size must be an integer >= 259 (3 special ids + 256 bytes), got {vocab_size!r}")
    if min_frequency < 1:
        raise OryxError(f"min_frequency must be >= 1, got {min_frequency}")
    if isinstance(source, (str, os.PathLike)):
        raise OryxError("train_bpe takes a list of texts or of files, not a single string or path")
    items = list(source)
    texts = (read_text(Path(x)) if isinstance(x, os.PathLike) else x for x in items)
    tok = HFCore(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"], SPECIAL_TOKENS["pad"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(items))
    return HFTokenizer(tok, "bpe", bos_id=0, eos_id=1, pad_id=2)


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """"byte", a directory written by `Tokenizer.save`, or a directory (or file) holding a Hugging Face
    tokenizer.json. A missing or corrupt tokenizer is an OryxError naming the path."""
    if str(spec) == "byte":
        return ByteTokenizer()
    path = Path(spec).expanduser()
    if path.is_file() and path.name == HF_FILE:
        return _load_hf(path.parent, marker=None)
    if not path.is_dir():
        raise OryxError(f"tokenizer {str(spec)!r}: not 'byte' and not a tokenizer directory (no such directory)")
    marker = read_json_object(path / MARKER_FILE) if (path / MARKER_FILE).is_file() else None
    if marker is not None and marker.get("name") == "byte":
        return ByteTokenizer()
    if (path / HF_FILE).is_file():
        return _load_hf(path, marker)
    raise OryxError(f"no tokenizer in {path}: expected {MARKER_FILE} (byte) or {HF_FILE}")


def _load_hf(directory: Path, marker: dict | None) -> HFTokenizer:
    """tokenizer.json with special ids from our marker, else from a transformers tokenizer_config.json,
    else guessed from the usual special-token names."""
    from tokenizers import Tokenizer as HFCore

    path = directory / HF_FILE
    try:
        tok = HFCore.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        raise OryxError(f"{path} is not a valid tokenizer.json (corrupt?): {e}") from None
    if marker is not None:
        try:
            return HFTokenizer(tok, str(marker["name"]), int(marker["bos_id"]), int(marker["eos_id"]),
                               None if marker.get("pad_id") is None else int(marker["pad_id"]))
        except (KeyError, TypeError, ValueError) as e:
            raise OryxError(f"{directory / MARKER_FILE} is missing or has a bad field ({e})") from None
    found = _special_ids(tok, directory)
    if "eos" not in found:
        raise OryxError(f"the tokenizer in {directory} has no end-of-sequence token "
                        f"(looked for {', '.join(_GUESSES['eos'])} and tokenizer_config.json)")
    return HFTokenizer(tok, "hf", bos_id=found.get("bos", found["eos"]), eos_id=found["eos"], pad_id=found.get("pad"))


def _special_ids(tok, directory: Path) -> dict[str, int]:
    """{'bos'|'eos'|'pad': id} from tokenizer_config.json (transformers) or the usual names."""
    config_path = directory / "tokenizer_config.json"
    config = read_json_object(config_path) if config_path.is_file() else {}
    found: dict[str, int] = {}
    for kind, guesses in _GUESSES.items():
        named = config.get(f"{kind}_token")
        if isinstance(named, dict):  # transformers may store {"content": "</s>", ...}
            named = named.get("content")
        for text in ([named] if isinstance(named, str) else []) + list(guesses):
            token_id = tok.token_to_id(text)
            if token_id is not None:
                found[kind] = token_id
                break
    return found
