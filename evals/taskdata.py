"""Documents of the offline lm-eval tasks (evals/tasks/*.yaml), made from what the project prepares.

    oryx_cloze    multiple choice: a held-out passage, its true next line among three lines from elsewhere
    oryx_heldout  rolling log-likelihood of held-out passages (word/byte perplexity, bits per byte)
    oryx_passkey  generation: the needle-in-a-haystack task of oryx.data.synthetic in corpus mode (a pass
                  key hidden in held-out text, asked for at the end); exact match of the digits
    oryx_mqar     loglikelihood: MQAR of oryx.data.synthetic, one document per query, every token id
                  written as one printable ASCII character (so a byte-level model reads the generator's
                  sequence exactly); acc = the greedy prediction is the value

Held-out text is the validation split of a prepared corpus (`oryx data prepare shakespeare`): the
directory given as `corpus` (lm-eval `--metadata corpus=DIR`), else `<runs dir>/data/shakespeare`.
Every builder is seeded: the same corpus and options give the same documents.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

from oryx.errors import OryxError

DEFAULT_CORPUS = Path("data") / "shakespeare"  # under the runs dir (oryx.tracking.runs_dir)
# One character per MQAR token id: printable ASCII without whitespace (94 characters).
MQAR_ALPHABET = "".join(c for c in string.printable if not c.isspace())


def corpus_dir(corpus: str | Path | None) -> Path:
    """The prepared corpus the tasks read: `corpus`, else <runs dir>/data/shakespeare."""
    from oryx.tracking import runs_dir

    path = Path(corpus).expanduser() if corpus else runs_dir() / DEFAULT_CORPUS
    if not (path / "manifest.json").is_file():
        raise OryxError(
            f"the offline tasks read held-out text from a prepared corpus, and there is none at {path}: run "
            f"`oryx data prepare shakespeare --out {path}` or pass --metadata corpus=DIR"
        )
    return path


def heldout_text(corpus: str | Path | None) -> list[str]:
    """The documents of the corpus's validation split, as text."""
    from oryx.data.corpus import TokenCorpus

    opened = TokenCorpus.open(corpus_dir(corpus))
    tokens = opened.tokens("val")
    docs = [opened.tokenizer.decode(tokens[d["start"] : d["start"] + d["tokens"]]) for d in opened.documents("val")]
    if not docs:
        raise OryxError(f"the corpus {opened.directory} has no validation documents (prepare it with --val-fraction > 0)")
    return docs


def _lines(docs: list[str], lo: int, hi: int) -> list[str]:
    """Lines of lo..hi characters (stripped), in order."""
    return [s for d in docs for s in (line.strip() for line in d.splitlines()) if lo <= len(s) <= hi]


def passages(docs: list[str], chars: int) -> list[str]:
    """Consecutive runs of whole lines of about `chars` characters (at most, unless one line is longer)."""
    out = []
    for doc in docs:
        current = ""
        for line in doc.splitlines(keepends=True):
            if current and len(current) + len(line) > chars:
                out.append(current)
                current = ""
            current += line
        if current.strip():
            out.append(current)
    return [p for p in out if p.strip()]


def cloze_docs(corpus=None, n: int = 200, context_chars: int = 400, choices: int = 4, seed: int = 0) -> list[dict]:
    """{'context', 'choices', 'gold'}: `context` (whole lines, ending in a newline) is followed in the
    held-out text by choices[gold]; the other choices are lines drawn from elsewhere in that text."""
    docs = heldout_text(corpus)
    rng = random.Random(seed)
    pool = _lines(docs, 20, 80)
    out = []
    for passage in passages(docs, context_chars + 80):
        lines = passage.splitlines(keepends=True)
        if len(lines) < 3 or not 20 <= len(lines[-1].strip()) <= 80:
            continue
        context, answer = "".join(lines[:-1]), lines[-1].strip()
        wrong = rng.sample([s for s in pool if s != answer], choices - 1)
        gold = rng.randrange(choices)
        out.append({"context": context, "choices": [*wrong[:gold], answer, *wrong[gold:]], "gold": gold})
    if len(out) < n:
        return out
    return [out[i] for i in sorted(rng.sample(range(len(out)), n))]


def heldout_docs(corpus=None, n: int = 40, chars: int = 2000) -> list[dict]:
    """{'text'}: n passages of about `chars` characters, spread evenly over the held-out text."""
    found = passages(heldout_text(corpus), chars)
    step = max(1, len(found) // n)
    return [{"text": p} for p in found[::step][:n]]


def passkey_docs(corpus=None, context_len=(128, 256), depth=(0.0, 0.5, 1.0), num_examples: int = 8,
                 value_len: int = 5, seed: int = 0) -> list[dict]:
    """{'context', 'answer', 'context_len', 'depth'}: a NIAHConfig example in corpus mode, cut before its
    answer, as text (the question ends with 'The pass key is ')."""
    from oryx.data.synthetic import NIAHConfig

    config = NIAHConfig(filler=str(corpus_dir(corpus)), context_len=list(context_len), depth=list(depth),
                        value_len=value_len, num_examples=num_examples, seed=seed)
    batch = config.generate()
    decode = config.tokenizer().decode
    answer = batch.role_mask("answer")
    out = []
    for row in range(len(batch)):
        positions = answer[row].nonzero()[:, 0]
        first, last = int(positions[0]), int(positions[-1]) + 1
        ids = batch.input_ids[row]
        out.append({"context": decode(ids[:first]), "answer": decode(ids[first:last]),
                    "context_len": int(batch.slices["context_len"][row]), "depth": float(batch.slices["depth"][row])})
    return out


def mqar_docs(n: int = 32, vocab_size: int = 64, num_kv_pairs: int = 4, input_seq_len: int = 64,
              seed: int = 0) -> list[dict]:
    """{'context', 'answer', 'example', 'query_distance'}: one document per query of n MQARConfig
    examples (filler id 0), ids written as MQAR_ALPHABET characters."""
    from oryx.data.synthetic import MQARConfig

    if vocab_size > len(MQAR_ALPHABET):
        raise OryxError(f"oryx_mqar writes each id as one character: vocab_size must be <= {len(MQAR_ALPHABET)}, "
                        f"got {vocab_size}")
    batch = MQARConfig(vocab_size=vocab_size, num_kv_pairs=num_kv_pairs, input_seq_len=input_seq_len,
                       num_examples=n, random_non_queries=False, seed=seed).generate()
    text = lambda ids: "".join(MQAR_ALPHABET[i] for i in ids)  # noqa: E731
    out = []
    for row in range(n):
        ids = batch.input_ids[row].tolist()
        for t in batch.answer_mask[row].nonzero()[:, 0].tolist():
            out.append({"context": text(ids[:t]), "answer": text(ids[t : t + 1]), "example": row,
                        "query_distance": int(batch.slices["query_distance"][row, t])})
    return out
