"""Scoring and generation over token ids: batched, shared prefixes computed once, modes logged.

    scorer = Scorer(model, schedule, batch_size=16, log=ModeLog(model.config.n_layers))
    scorer.loglikelihood([(context_ids, continuation_ids), ...], tags)   # [(logprob, is_greedy), ...]
    scorer.generate([prompt_ids, ...], tags, max_new_tokens=32, stop=...)  # generated ids per prompt

These are the model-side primitives under the lm-eval adapter (evals/harness.py); they know nothing of
lm-eval. Modes: each sequence gets `sequence_modes(schedule, sequence)` for the positions a plain forward
of that sequence would see, so batching, padding and prefix reuse never change what a position runs.

Batching: requests whose context and context modes are identical (the choices of a multiple-choice
question) form a group; the context is run once with a cache, the cache is repeated per member, and the
members' continuations are run together (`OryxCache.repeat`). Groups with equal context lengths share one
batch. Requests without a partner run whole, longest first, right-padded (exact for a causal model).
Generation batches prompts of equal length (the model has no left padding) and decodes with the cache.

Inputs longer than `max_length` are cut from the left, as lm-eval's HFLM does, and one warning (logger
`oryx.evals`) counts them per call. Loglikelihood: the model reads `(context + continuation)[-(max_length
+ 1):][:-1]`, so the continuation is always scored whole and the context loses its oldest tokens (a
continuation longer than max_length is an error, where HFLM fails an assertion). Generation: the prompt
keeps its last `max_length - max_new_tokens` tokens (max_new_tokens >= max_length is an error, as in
HFLM). Everything downstream (modes, prefix sharing, the mode log) sees the cut sequence only: it is
what the model reads.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from evals.modelog import ModeLog, Tag
from evals.schedule import sequence_modes, stack_modes
from oryx.errors import OryxError
from oryx.model import OryxForCausalLM
from oryx.model.sampling import sample
from oryx.ops.precision import upcast
from oryx.routing import Schedule

PAD_ID = 0  # any valid id: padding sits after every real position, so nothing real reads it

logger = logging.getLogger("oryx.evals")

Pair = tuple[list[int], list[int]]
#: Scorer.loglikelihood's progress: False (none), True (a tqdm bar over requests), or a function called
#: after each batch with the indices (into `pairs`) of the requests it scored.
Progress = bool | Callable[[list[int]], object]


@dataclass
class _Request:
    """One loglikelihood request: input = context + continuation[:-1], scored on the continuation.
    context is the one the model reads: cut from the left when the request is longer than max_length."""

    index: int
    context: list[int]
    continuation: list[int]
    modes: torch.Tensor | None  # [len(inputs)] bool, or None for native modes
    truncated: bool = False

    @property
    def inputs(self) -> list[int]:
        return self.context + self.continuation[:-1]

    @property
    def targets(self) -> list[int]:
        """Next token of each input position."""
        return self.context[1:] + self.continuation


class Scorer:
    """Evaluates one model under one schedule; every sequence it reads is counted in `log`."""

    def __init__(
        self,
        model: OryxForCausalLM,
        schedule: Schedule | None,
        batch_size: int,
        log: ModeLog,
        max_length: int | None = None,
        reuse_prefix: bool = True,
    ):
        if batch_size < 1:
            raise OryxError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.schedule = schedule
        self.batch_size = batch_size
        self.log = log
        self.max_length = max_length or model.config.max_seq_len
        self.reuse_prefix = reuse_prefix
        self.device = next(model.parameters()).device

    # ---- loglikelihood ---------------------------------------------------------------------------
    @torch.no_grad()
    def loglikelihood(self, pairs: Sequence[Pair], tags: Sequence[Tag],
                      progress: Progress = False) -> list[tuple[float, bool]]:
        """(log p(continuation | context), whether greedy decoding gives the continuation) per pair.

        context: >= 1 ids (lm-eval puts a prefix token in front of an empty one); continuation: 1 to
        max_length ids. A pair longer than max_length + 1 tokens loses the oldest tokens of its context
        (lm-eval's HFLM: the model reads `(context + continuation)[-(max_length + 1):][:-1]`); one warning
        counts such pairs. progress: see `Progress` (lm-eval's "Running loglikelihood requests" bar).
        """
        requests = [self._request(i, ctx, cont) for i, (ctx, cont) in enumerate(pairs)]
        truncated = sum(r.truncated for r in requests)
        if truncated:
            logger.warning("%d of %d loglikelihood requests do not fit max_length=%d: their contexts were "
                           "truncated from the left (oldest tokens dropped, the continuation kept whole), as "
                           "lm-eval's HFLM does", truncated, len(requests), self.max_length)
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        groups: dict[tuple, list[_Request]] = defaultdict(list)
        for r in requests:
            groups[self._prefix_key(r)].append(r)
        alone = sorted((g[0] for g in groups.values() if len(g) == 1), key=lambda r: -len(r.inputs))
        with tqdm(total=len(requests), desc="Running loglikelihood requests", disable=progress is not True) as bar:
            def scored(batch: list[_Request]) -> None:
                bar.update(len(batch))
                if callable(progress):
                    progress([r.index for r in batch])

            for first in range(0, len(alone), self.batch_size):
                batch = alone[first : first + self.batch_size]
                self._score_whole(batch, tags, results)
                scored(batch)
            for pack in self._packs([g for g in groups.values() if len(g) > 1]):
                self._score_shared(pack, tags, results)
                scored([r for group in pack for r in group])
        return results

    def _request(self, index: int, context: list[int], continuation: list[int]) -> _Request:
        """The request the model reads: context cut from the left to fit max_length (HFLM's slice), its
        modes those of the cut input."""
        if not context or not continuation:
            raise OryxError(f"request {index}: context and continuation need at least one token each")
        if len(continuation) > self.max_length:
            raise OryxError(f"request {index}: its continuation has {len(continuation)} tokens, more than "
                            f"max_length={self.max_length}, so it cannot be scored whole (lm-eval's HFLM "
                            f"refuses it too)")
        kept = (context + continuation)[-(self.max_length + 1) :]
        truncated = len(kept) < len(context) + len(continuation)
        context = kept[: len(kept) - len(continuation)]  # >= 1 token: the continuation is <= max_length
        inputs = context + continuation[:-1]
        return _Request(index, context, continuation, sequence_modes(self.schedule, inputs), truncated)

    def _prefix_key(self, r: _Request) -> tuple:
        """Requests with equal keys share their context's computation."""
        if not self.reuse_prefix:
            return (r.index,)
        modes = None if r.modes is None else r.modes[: len(r.context)].numpy().tobytes()
        return (tuple(r.context), modes)

    def _packs(self, groups: list[list[_Request]]) -> list[list[list[_Request]]]:
        """Groups of equal context length packed together, about batch_size continuations per pack."""
        packs: list[list[list[_Request]]] = []
        rows = 0
        for group in sorted(groups, key=lambda g: len(g[0].context)):
            same = packs and len(packs[-1][0][0].context) == len(group[0].context)
            if same and rows + len(group) <= self.batch_size:
                packs[-1].append(group)
                rows += len(group)
            else:
                packs.append([group])
                rows = len(group)
        return packs

    def _forward(self, sequences: list[list[int]], masks: list[torch.Tensor | None], cache=None):
        """Right-padded forward of sequences -> (logits [B, T, V] in the model's dtype, modes [L, B, T])."""
        T = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), T), PAD_ID, dtype=torch.long)
        for row, s in enumerate(sequences):
            ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        out = self.model(ids.to(self.device), modes=stack_modes(masks, T, self.device), cache=cache)
        return out.logits, out.modes

    def _score_whole(self, batch: list[_Request], tags: Sequence[Tag], results: list) -> None:
        """Each request in one forward of its whole input."""
        logits, modes = self._forward([r.inputs for r in batch], [r.modes for r in batch])
        modes = modes.cpu()  # one read for the batch, not one per request
        spans = [logits[row, len(r.inputs) - len(r.continuation) : len(r.inputs)] for row, r in enumerate(batch)]
        for r, score in zip(batch, _score_all(spans, [r.continuation for r in batch])):
            results[r.index] = score
        for row, r in enumerate(batch):
            self._log(tags[r.index], r, [logits[row, : len(r.inputs)]], modes[:, row, : len(r.inputs)])

    def _score_shared(self, pack: list[list[_Request]], tags: Sequence[Tag], results: list) -> None:
        """Groups sharing a context (all of one length): contexts once, then every continuation."""
        heads = [g[0] for g in pack]
        Lc = len(heads[0].context)
        cache = self.model.new_cache(len(pack))
        ctx_masks = [None if r.modes is None else r.modes[:Lc] for r in heads]
        ctx_logits, ctx_modes = self._forward([r.context for r in heads], ctx_masks, cache)
        members = [(g, r) for g, group in enumerate(pack) for r in group]
        tails = [r.continuation[:-1] for _, r in members]
        if max(len(t) for t in tails) > 0:
            cache = cache.repeat([len(group) for group in pack])
            tail_masks = [None if r.modes is None else r.modes[Lc:] for _, r in members]
            tail_logits, tail_modes = self._forward([t or [PAD_ID] for t in tails], tail_masks, cache)
        ctx_modes = ctx_modes.cpu()  # reads for the pack, not per request
        tail_modes = tail_modes.cpu() if max(len(t) for t in tails) > 0 else None
        logged, spans = [], []
        for row, (g, r) in enumerate(members):
            pieces, modes = [ctx_logits[g]], [ctx_modes[:, g]]    # [Lc, V], [L, Lc]
            if len(tails[row]) > 0:
                pieces.append(tail_logits[row, : len(tails[row])])
                modes.append(tail_modes[:, row, : len(tails[row])])
            spans.append(torch.cat([pieces[0][-1:], *pieces[1:]]))
            logged.append((r, pieces, torch.cat(modes, dim=1)))
        for (_, r), score in zip(members, _score_all(spans, [r.continuation for _, r in members])):
            results[r.index] = score
        for r, pieces, modes in logged:
            self._log(tags[r.index], r, pieces, modes)

    def _log(self, tag: Tag, r: _Request, logits: list[torch.Tensor], modes: torch.Tensor) -> None:
        """Count the sequence's modes; for a sampled example also whether each prediction was right.
        logits: pieces [T_i, V] that together cover the sequence's positions."""
        correct = None
        if self.log.wants(tag):
            predicted = torch.cat([piece.argmax(-1) for piece in logits]).cpu()
            correct = predicted == torch.tensor(r.targets)
        self.log.add(tag, torch.tensor(r.inputs), modes, correct)

    # ---- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[list[int]],
        tags: Sequence[Tag],
        max_new_tokens: int,
        stop: Callable[[list[int]], bool] | None = None,
        eos_id: int | None = None,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Generated ids per prompt (eos not included): at most max_new_tokens, ending early at eos or
        when stop(generated ids so far) is True. temperature 0 = greedy (argmax), else sampling with
        the model's sampler (`oryx.model.sampling.sample`: temperature, top_k). Modes: the prompt's
        `sequence_modes`, then the schedule at each decoded position (as `model.generate` does).

        A prompt longer than `max_length - max_new_tokens` keeps only its last that many tokens (lm-eval's
        HFLM); one warning counts such prompts, and modes and logs are those of the kept tokens.
        max_new_tokens must be < max_length (HFLM asserts it), so that some prompt is left."""
        if max_new_tokens < 0:
            raise OryxError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if max_new_tokens >= self.max_length:
            raise OryxError(f"max_gen_toks={max_new_tokens} leaves no room for the prompt: it must be less than "
                            f"max_length={self.max_length} (lm-eval's HFLM refuses it too)")
        for i, p in enumerate(prompts):
            if not p:
                raise OryxError(f"prompt {i} is empty")
        keep = self.max_length - max_new_tokens
        truncated = sum(len(p) > keep for p in prompts)
        if truncated:
            logger.warning("%d of %d prompts are longer than max_length=%d minus max_gen_toks=%d: they were "
                           "truncated from the left to their last %d tokens, as lm-eval's HFLM does",
                           truncated, len(prompts), self.max_length, max_new_tokens, keep)
        prompts = [list(p[-keep:]) for p in prompts]
        out: list[list[int]] = [[] for _ in prompts]
        if max_new_tokens == 0:
            return out
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            by_length[len(p)].append(i)
        for _, indices in sorted(by_length.items()):
            for first in range(0, len(indices), self.batch_size):
                batch = indices[first : first + self.batch_size]
                generated = self._decode([prompts[i] for i in batch], [tags[i] for i in batch], max_new_tokens,
                                         stop, eos_id, temperature, top_k, generator)
                for i, ids in zip(batch, generated):
                    out[i] = ids
        return out

    def _decode(self, prompts, tags, max_new_tokens, stop, eos_id, temperature, top_k, generator) -> list[list[int]]:
        """Prompts of one length -> generated ids per prompt (every row steps until all are done)."""
        B, Lp = len(prompts), len(prompts[0])
        cache = self.model.new_cache(B)
        logits, prompt_modes = self._forward(prompts, [sequence_modes(self.schedule, p) for p in prompts], cache)
        rows = [_Generation() for _ in range(B)]
        step_modes: list[torch.Tensor] = []                                                 # [L, B] each
        last = upcast(logits[:, -1])                                                        # [B, V]
        for step in range(max_new_tokens):
            nxt = sample(last, temperature, top_k, generator)              # [B]
            for row, token in zip(rows, nxt.tolist()):
                row.take(token, step, max_new_tokens, stop, eos_id)
            if all(row.done for row in rows):
                break
            ids = nxt[:, None]                                                              # [B, 1]
            modes = None if self.schedule is None else self.schedule.mask(ids, Lp + step)
            result = self.model(ids, modes=modes, cache=cache)
            last = upcast(result.logits[:, -1])
            step_modes.append(result.modes[:, :, 0])
        self._log_generation(tags, prompts, logits, prompt_modes, step_modes, rows)
        return [row.ids for row in rows]

    def _log_generation(self, tags, prompts, logits, prompt_modes, step_modes, rows) -> None:
        """Count each row's modes over the positions whose output was read (the prompt, then the generated
        tokens before the last); for a sampled example also whether each prompt position predicted the
        next prompt token (the prediction of a generated token has no target)."""
        Lp = len(prompts[0])
        for b, (tag, row) in enumerate(zip(tags, rows)):
            fed = row.ids[: row.read]
            modes = torch.cat([prompt_modes[:, b], *(m[:, b : b + 1] for m in step_modes[: len(fed)])], dim=1)
            correct = known = None
            if self.log.wants(tag):
                unknown = torch.zeros(len(fed) + 1, dtype=torch.bool)
                correct = torch.cat([logits[b, :-1].argmax(-1).cpu() == torch.tensor(prompts[b][1:]), unknown])
                known = torch.cat([torch.ones(Lp - 1, dtype=torch.bool), unknown])
            self.log.add(tag, torch.tensor(prompts[b] + fed), modes, correct, known)


@dataclass
class _Generation:
    """One sequence being decoded: its generated ids, and how many of them were read back."""

    ids: list[int] = field(default_factory=list)
    read: int = 0  # generated tokens whose position's output was read (to draw the next token)
    done: bool = False

    def take(self, token: int, step: int, max_new_tokens: int, stop, eos_id: int | None) -> None:
        """The token drawn at `step` (from the output at the position of generated token step-1)."""
        if self.done:
            return
        self.read = step
        if token == eos_id:
            self.done = True
            return
        self.ids.append(token)
        self.done = len(self.ids) == max_new_tokens or (stop is not None and stop(self.ids))


def _score(logits: torch.Tensor, targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [k, V] of the positions that predict targets [k] -> (sum of log p(target), all greedy),
    both 0-d tensors on logits' device (read to the host together by `_score_all`)."""
    logits = upcast(logits)
    t = torch.tensor(targets, device=logits.device)
    logp = logits.gather(-1, t[:, None])[:, 0] - torch.logsumexp(logits, -1)
    return logp.sum(), (logits.argmax(-1) == t).all()


def _score_all(spans: list[torch.Tensor], targets: list[list[int]]) -> list[tuple[float, bool]]:
    """`_score` of each (logits [k_i, V], targets [k_i]) pair, read to the host in one transfer."""
    if not spans:
        return []
    pairs = [_score(logits, t) for logits, t in zip(spans, targets)]
    table = torch.stack([torch.stack([logp.double(), greedy.double()]) for logp, greedy in pairs]).tolist()
    return [(logp, greedy == 1.0) for logp, greedy in table]
