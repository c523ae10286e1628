"""A prepared corpus as one compressed file, to carry it where it cannot be prepared (no registry).

    pack("runs/data/english-bpe8k", "runs/data/english-bpe8k.tar.xz")      # on a machine with apt and pip
    unpack("runs/data/english-bpe8k.tar.xz", "runs/data/english-bpe8k")    # anywhere, offline

The archive is a tar.xz of the corpus directory's files (manifest, token files, documents.jsonl,
tokenizer files), flat. `unpack` extracts into a hidden directory beside the target, opens the result
as a corpus (every token file's size checked against the manifest, the tokenizer against its record),
and only then renames it into place: a bad archive leaves nothing at the target.
"""

from __future__ import annotations

import lzma
import shutil
import tarfile
import tempfile
from pathlib import Path

from oryx.data.corpus import TokenCorpus
from oryx.data.prepare import check_target, publish
from oryx.errors import OryxError
from oryx.fileio import umask, write_atomic

#: What one device call carries in all (ignored paths travel with the working tree up to this size).
CARRY_LIMIT = 64 * 2**20


def pack(corpus_dir: str | Path, archive: str | Path, level: int = 9) -> Path:
    """Write `archive` (a .tar.xz, atomically) holding the corpus at `corpus_dir`; returns its path.
    level: xz preset 0-9 (9: smallest; about a minute per 100 MB of tokens on one core)."""
    corpus = TokenCorpus.open(corpus_dir)  # refuse to pack something that is not a whole corpus
    archive = Path(archive).expanduser()
    if not str(archive).endswith(".tar.xz"):
        raise OryxError(f"the archive name must end in .tar.xz, got {archive}")
    files = sorted(p for p in corpus.directory.iterdir() if p.is_file())

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:xz", preset=level | lzma.PRESET_EXTREME if level == 9 else level) as tar:
            for path in files:
                tar.add(path, arcname=path.name, recursive=False)

    write_atomic(archive, write)
    return archive


def unpack(archive: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Extract a packed corpus into `out_dir` and return it (opened and checked before it is put there)."""
    archive, out = Path(archive).expanduser(), Path(out_dir).expanduser()
    if not archive.is_file():
        raise OryxError(f"no corpus archive at {archive}")
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        try:
            with tarfile.open(archive, "r:xz") as tar:
                members = tar.getmembers()
                nested = [m.name for m in members if not m.isfile() or "/" in m.name or m.name.startswith(".")]
                if nested:
                    raise OryxError(f"{archive} is not a packed corpus: it holds {nested[0]!r} (expected plain files)")
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as e:
            raise OryxError(f"{archive} is not a readable .tar.xz ({e})") from None
        TokenCorpus.open(tmp)
        tmp.chmod(0o777 & ~umask())
        publish(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
