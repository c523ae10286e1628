"""`oryx data ...`: prepare corpora, train a BPE tokenizer, show corpora and synthetic tasks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Data: prepare token corpora, train tokenizers, look at corpora and synthetic tasks.",
                       no_args_is_help=True)

ROLE_STYLES = ("dim", "cyan", "magenta", "yellow", "bold green", "bold red", "blue", "white")


@data_app.command("prepare")
def prepare_command(
    recipe: Annotated[str, typer.Argument(help="files | shakespeare | hf | english")],
    out: Annotated[Path, typer.Option("--out", "-o", help="corpus directory to create")],
    tokenizer: Annotated[str, typer.Option(help="byte, a tokenizer directory, or bpe:N (train N ids on the train split)")] = "byte",
    val_fraction: Annotated[float, typer.Option(help="share of documents held out for validation")] = 0.05,
    seed: Annotated[int, typer.Option(help="seed of the train/validation split")] = 0,
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="files: a file, directory or glob (repeatable)")] = None,
    document: Annotated[str | None, typer.Option(help="files: one document per file, paragraph or line")] = None,
    edition: Annotated[str | None, typer.Option(help="shakespeare: modern or folio")] = None,
    dataset: Annotated[str | None, typer.Option(help="hf: dataset name on the hub, or a local dataset directory")] = None,
    subset: Annotated[str | None, typer.Option(help="hf: configuration name")] = None,
    split: Annotated[str | None, typer.Option(help="hf: the dataset's split to read (default train)")] = None,
    text_field: Annotated[str | None, typer.Option(help="hf: column holding the text (default text)")] = None,
    max_documents: Annotated[int | None, typer.Option(help="hf: read at most this many rows; english: at most "
                                                      "this many documents of each source")] = None,
    sources: Annotated[list[str] | None, typer.Option("--source", help="english: a source to include (repeatable; "
                                                      "default all: linux, python, perl, postgresql, gcide, "
                                                      "wordnet, jargon, standards, shakespeare)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing corpus at --out")] = False,
) -> None:
    """Turn text into a corpus directory: token files (memory-mapped), manifest.json, the tokenizer."""
    from oryx.data.corpus import TokenCorpus
    from oryx.data.prepare import prepare

    given = {"inputs": inputs or None, "document": document, "edition": edition, "dataset": dataset,
             "subset": subset, "split": split, "text_field": text_field, "max_documents": max_documents,
             "sources": sources or None}
    options = {k: v for k, v in given.items() if v is not None}
    path = prepare(recipe, out, tokenizer, val_fraction, seed, overwrite=overwrite, progress=True, **options)
    _print_corpus(TokenCorpus.open(path))


@data_app.command("pack")
def pack_command(
    corpus: Annotated[Path, typer.Argument(help="a prepared corpus directory")],
    archive: Annotated[Path, typer.Option("--out", "-o", help="the .tar.xz to write (e.g. runs/data/NAME.tar.xz)")],
    level: Annotated[int, typer.Option(min=0, max=9, help="xz preset: 9 is smallest and slowest")] = 9,
) -> None:
    """Compress a prepared corpus into one .tar.xz, to carry it to a machine that cannot prepare it
    (no package registry): there, `oryx data unpack` restores it."""
    from oryx.data.pack import CARRY_LIMIT, pack

    path = pack(corpus, archive, level)
    size = path.stat().st_size
    typer.echo(f"packed {corpus} into {path}: {size / 2**20:.1f} MiB")
    if size > CARRY_LIMIT:
        typer.echo(f"warning: larger than the {CARRY_LIMIT // 2**20} MiB a device call carries", err=True)


@data_app.command("unpack")
def unpack_command(
    archive: Annotated[Path, typer.Argument(help="a .tar.xz written by `oryx data pack`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="corpus directory to create")],
    overwrite: Annotated[bool, typer.Option(help="replace an existing corpus at --out")] = False,
) -> None:
    """Restore a packed corpus (offline); it is checked as a corpus before it is put at --out."""
    from oryx.data.corpus import TokenCorpus
    from oryx.data.pack import unpack

    _print_corpus(TokenCorpus.open(unpack(archive, out, overwrite=overwrite)))


@data_app.command("tokenizer")
def tokenizer_command(
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="a text file, directory or glob (repeatable)")],
    vocab_size: Annotated[int, typer.Option(help="ids in the vocabulary (>= 259: 3 special + 256 bytes)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write tokenizer.json into")],
    min_frequency: Annotated[int, typer.Option(help="a merge needs at least this many occurrences")] = 2,
    overwrite: Annotated[bool, typer.Option(help="replace a tokenizer already in --out")] = False,
) -> None:
    """Train a byte-level BPE tokenizer on local text files (offline) and save it into --out."""
    from oryx.data.files import expand
    from oryx.data.tokenizers import HF_FILE, MARKER_FILE, train_bpe
    from oryx.errors import OryxError

    existing = [name for name in (HF_FILE, MARKER_FILE) if (out / name).exists()]
    if existing and not overwrite:
        raise OryxError(f"{out} already holds a tokenizer ({', '.join(existing)}); pass --overwrite to replace it")
    files = expand(inputs)
    tok = train_bpe(files, vocab_size, min_frequency=min_frequency, show_progress=sys.stderr.isatty())
    tok.save(out)
    typer.echo(f"trained a BPE tokenizer of {tok.vocab_size} ids on {len(files)} file(s); saved to {out}")


@data_app.command("show")
def show_command(
    target: Annotated[str, typer.Argument(help="a corpus directory, or a synthetic task: mqar, niah")],
    num: Annotated[int, typer.Option("--num", "-n", help="examples (tasks) or documents (corpora) to show")] = 3,
    split: Annotated[str, typer.Option(help="corpora: the split to show documents from")] = "val",
    tokens: Annotated[int, typer.Option(help="corpora: tokens shown per document")] = 200,
    settings: Annotated[list[str] | None, typer.Option("--set", help="tasks: a config field, KEY=VALUE (repeatable)")] = None,
) -> None:
    """Print a corpus's manifest and the start of a few documents, or a few task examples with roles.

    Task examples show each position's role as a colour (legend on top) and the labels at the answers.
    """
    from oryx.data.corpus import TokenCorpus
    from oryx.data.synthetic import TASKS
    from oryx.errors import OryxError
    from oryx.training.config import parse_overrides

    if num < 1:
        raise OryxError(f"--num must be >= 1, got {num}")
    if target in TASKS:
        overrides = {"num_examples": num, **parse_overrides(settings or [])}
        _print_task(target, TASKS[target].model_validate(overrides))
    elif Path(target).is_dir():
        corpus = TokenCorpus.open(target)
        _print_corpus(corpus)
        _print_documents(corpus, split, num, tokens)
    else:
        raise OryxError(f"{target!r} is neither a corpus directory nor a task ({', '.join(TASKS)})")


def _print_corpus(corpus) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    m = corpus.manifest
    console = Console()
    console.print(Text.assemble((str(corpus.directory), "bold"), f": recipe {m.recipe}, {m.tokenizer.name} "
                                f"tokenizer of {m.tokenizer.vocab_size} ids, {m.dtype} token files"))
    table = Table()
    for column in ("split", "documents", "tokens", "bytes"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, info in m.splits.items():
        table.add_row(name, f"{info.documents:,}", f"{info.tokens:,}", "?" if info.bytes is None else f"{info.bytes:,}")
    console.print(table)
    if m.duplicates:
        console.print(f"{m.duplicates:,} duplicate document(s) left out")


def _print_documents(corpus, split: str, num: int, tokens: int) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console()
    ids = corpus.tokens(split)
    for record in corpus.documents(split)[:num]:
        start = record["start"]
        shown = corpus.tokenizer.decode(ids[start:start + min(tokens, record["tokens"])])
        console.print(Text(f"{record['name']} ({record['tokens']:,} tokens)", style="bold"))
        console.print(Text(shown + (" ..." if record["tokens"] > tokens else "")))


def _print_task(name: str, config) -> None:
    """Each example as runs of same-role tokens (ids, or text when the task uses a corpus's tokenizer)."""
    from rich.console import Console
    from rich.text import Text

    console = Console()
    batch = config.generate()
    tokenizer = config.tokenizer()
    decode = tokenizer.decode if tokenizer is not None else None
    legend = Text("roles: ")
    for i, role in enumerate(batch.role_names):
        legend.append(f"{role} ", style=ROLE_STYLES[i % len(ROLE_STYLES)])
    console.print(legend)
    for row in range(len(batch)):
        slices = {k: v[row].tolist() for k, v in batch.slices.items() if v.dim() == 1}
        console.print(Text(f"{name} example {row} {slices}", style="bold"))
        line = Text()
        ids, roles = batch.input_ids[row].tolist(), batch.roles[row].tolist()
        start = 0
        for end in range(1, len(ids) + 1):
            if end == len(ids) or roles[end] != roles[start]:
                run = ids[start:end]
                shown = decode(run, skip_special=False) if decode else " ".join(map(str, run))
                line.append(shown + ("" if decode else " "), style=ROLE_STYLES[roles[start] % len(ROLE_STYLES)])
                start = end
        console.print(line)
        answers = batch.labels[row][batch.answer_mask[row]].tolist()
        console.print(Text(f"labels at the answer positions: {answers}", style="dim"))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
