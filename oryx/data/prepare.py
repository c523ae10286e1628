"""`prepare`: a recipe's documents -> a corpus directory (token files, manifest, tokenizer).

    prepare("files", "data/notes", inputs=["notes/*.txt"])                  # byte tokenizer
    prepare("shakespeare", "data/shakespeare", tokenizer_spec="bpe:2048")   # BPE trained on the train split
    prepare("hf", "data/wt2", dataset="wikitext", subset="wikitext-2-raw-v1")
    prepare("english", "data/english", tokenizer_spec="bpe:8192", val_fraction=0.02)  # apt + pip, ~130 MB

Documents are deduplicated first (a document whose text equals an earlier one's up to whitespace is
left out, and counted in the manifest), then split into train and validation by document (a seeded
permutation; a document's tokens are never in both). Everything is written into a hidden temporary directory beside `out_dir` that is
renamed into place at the end, so an interrupted prepare leaves nothing at `out_dir`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from oryx.data.corpus import DOCUMENTS_FILE, MANIFEST_FILE, SPLITS, CorpusManifest, SplitInfo, token_dtype
from oryx.data.recipes import RECIPES, Document
from oryx.data.tokenizers import Tokenizer, load_tokenizer, train_bpe
from oryx.errors import OryxError
from oryx.fileio import replace_dir, umask, utc_timestamp

ENCODE_CHUNK = 256  # documents encoded per call (BPE encodes a batch in parallel)


def prepare(
    recipe: str,
    out_dir: str | Path,
    tokenizer_spec: str = "byte",
    val_fraction: float = 0.05,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: bool = False,
    **recipe_options,
) -> Path:
    """Prepare a corpus and return its directory.

    tokenizer_spec: "byte", a tokenizer directory (see load_tokenizer), or "bpe:N" to train a byte-level
    BPE of at most N ids on the training documents. val_fraction: share of the documents held out
    (at least one when > 0). overwrite: replace an existing corpus at out_dir (a directory that is not a
    corpus is never replaced). recipe_options: the recipe's options (oryx/data/recipes/).
    """
    if recipe not in RECIPES:
        raise OryxError(f"unknown recipe {recipe!r}; recipes: {', '.join(RECIPES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise OryxError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if seed < 0:
        raise OryxError(f"seed must be >= 0, got {seed}")
    out = Path(out_dir).expanduser()
    check_target(out, overwrite)
    source = RECIPES[recipe].from_options(recipe_options)
    docs, duplicates = deduplicate(source.documents())
    if not docs:
        raise OryxError(f"recipe {recipe!r} found no documents")
    is_val = split_documents(len(docs), val_fraction, seed)
    tokenizer = _tokenizer(tokenizer_spec, [d for d, v in zip(docs, is_val) if not v], progress)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        splits = _write_tokens(tmp, docs, is_val, tokenizer, progress)
        tokenizer.save(tmp)
        manifest = CorpusManifest(
            recipe=recipe, options=source.model_dump(), tokenizer=tokenizer.info(),
            dtype=token_dtype(tokenizer.vocab_size), val_fraction=val_fraction, duplicates=duplicates, seed=seed,
            splits=splits,
            created=utc_timestamp(), oryx_version=_version(),
            source=source.source(),
        )
        (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes the directory private; give it a normal one's mode
        publish(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def deduplicate(docs: list[Document]) -> tuple[list[Document], int]:
    """The documents whose text (whitespace-normalised) no earlier document has, and how many were left
    out. Empty documents are kept (the writer leaves them out uncounted). Reads every document once
    (a recipe's `read` is called again when the corpus is written)."""
    seen: set[bytes] = set()
    kept = []
    for doc in docs:
        text = " ".join(doc.read().split())
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        if not text or digest not in seen:
            seen.add(digest)
            kept.append(doc)
    return kept, len(docs) - len(kept)


def split_documents(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """bool [n]: which documents go to validation. round(val_fraction * n) of them, at least one when
    val_fraction > 0 and never all: a seeded permutation's first ones."""
    n_val = round(val_fraction * n)
    if val_fraction > 0:
        if n < 2:
            raise OryxError("a single document cannot be split into train and validation by document; "
                            "give more documents (files: --document paragraph or line) or --val-fraction 0")
        n_val = min(max(n_val, 1), n - 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return is_val


def check_target(out: Path, overwrite: bool) -> None:
    """Fail before any work when out exists and may not be replaced."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise OryxError(f"--out {out} exists and is not a directory")
    if not overwrite:
        raise OryxError(f"{out} already exists; pass --overwrite to replace the corpus there")
    if not (out / MANIFEST_FILE).is_file():
        raise OryxError(f"{out} exists and is not a prepared corpus (no {MANIFEST_FILE}); refusing to replace it")


def _tokenizer(spec: str, train_docs: list[Document], progress: bool) -> Tokenizer:
    """The tokenizer of a spec; "bpe:N" trains one on the training documents."""
    if not str(spec).startswith("bpe:"):
        return load_tokenizer(spec)
    size = str(spec)[4:]
    if not size.isdigit():
        raise OryxError(f"tokenizer spec {spec!r}: expected bpe:N with N an integer vocabulary size")
    return train_bpe((d.read() for d in train_docs), int(size), show_progress=progress and sys.stderr.isatty())


def _write_tokens(directory: Path, docs: list[Document], is_val: np.ndarray, tokenizer: Tokenizer,
                  progress: bool) -> dict[str, SplitInfo]:
    """Encode every document once, in order, appending it and an eos to its split's file; write
    documents.jsonl. Empty documents are left out."""
    from rich.console import Console
    from rich.progress import Progress

    dtype = np.dtype(token_dtype(tokenizer.vocab_size)).newbyteorder("<")
    files = {s: open(directory / f"{s}.bin", "wb") for s in SPLITS}  # noqa: SIM115 (closed below)
    counts = {s: [0, 0, 0] for s in SPLITS}  # tokens, documents, bytes
    try:
        console = Console(stderr=True)
        with Progress(console=console, disable=not (progress and console.is_terminal), transient=True) as bar, \
                open(directory / DOCUMENTS_FILE, "w", encoding="utf-8") as index:
            task = bar.add_task("tokenizing", total=len(docs))
            for first in range(0, len(docs), ENCODE_CHUNK):
                chunk = range(first, min(first + ENCODE_CHUNK, len(docs)))
                texts = [docs[i].read() for i in chunk]
                encoded = tokenizer.encode_batch(texts)
                for i, text, ids in zip(chunk, texts, encoded):
                    if not ids:
                        continue
                    split = "val" if is_val[i] else "train"
                    np.asarray([*ids, tokenizer.eos_id], dtype=dtype).tofile(files[split])
                    record = {"name": docs[i].name, "split": split, "start": counts[split][0], "tokens": len(ids)}
                    index.write(json.dumps(record) + "\n")
                    counts[split][0] += len(ids) + 1
                    counts[split][1] += 1
                    counts[split][2] += len(text.encode("utf-8"))
                bar.advance(task, len(chunk))
    finally:
        for f in files.values():
            f.close()
    if counts["train"][0] == 0:
        raise OryxError("the training split is empty (every training document is empty)")
    return {s: SplitInfo(file=f"{s}.bin", tokens=counts[s][0], documents=counts[s][1], bytes=counts[s][2])
            for s in SPLITS}


def publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished directory into place (replacing an old corpus only when allowed)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        check_target(out, overwrite)  # the directory may have appeared while we worked
    replace_dir(tmp, out, f".{out.name}.old-")


def _version() -> str:
    try:
        return metadata.version("oryx")
    except metadata.PackageNotFoundError:
        return "unknown"
