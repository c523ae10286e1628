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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from evals.modelog import ModeLog, Tag
from evals.schedule import sequence_modes, stack_modes
from oryx.errors import OryxError
from oryx.model import OryxForCausalLM
from oryx.model.sampling import sample
from oryx.ops.precision import upcast
from oryx.routing import Schedule

PAD_ID = 0  # any valid id: padding sits after every real position, so nothing real reads it

Pair = tuple[list[int], list[int]]


@dataclass
class _Request:
    """One loglikelihood request: input = context + continuation[:-1], scored on the continuation."""

    index: int
    context: list[int]
    continuation: list[int]
    modes: torch.Tensor | None  # [len(inputs)] bool, or None for native modes

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
    def loglikelihood(self, pairs: Sequence[Pair], tags: Sequence[Tag]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), whether greedy decoding gives the continuation) per pair.

        context: >= 1 ids (lm-eval puts a prefix token in front of an empty one); continuation: >= 1 ids.
        """
        requests = [self._request(i, ctx, cont) for i, (ctx, cont) in enumerate(pairs)]
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        groups: dict[tuple, list[_Request]] = defaultdict(list)
        for r in requests:
            groups[self._prefix_key(r)].append(r)
        alone = sorted((g[0] for g in groups.values() if len(g) == 1), key=lambda r: -len(r.inputs))
        for first in range(0, len(alone), self.batch_size):
            self._score_whole(alone[first : first + self.batch_size], tags, results)
        for pack in self._packs([g for g in groups.values() if len(g) > 1]):
            self._score_shared(pack, tags, results)
        return results

    def _request(self, index: int, context: list[int], continuation: list[int]) -> _Request:
        if not context or not continuation:
            raise OryxError(f"request {index}: context and continuation need at least one token each")
        length = len(context) + len(continuation) - 1
        if length > self.max_length:
            raise OryxError(f"request {index} has {length} tokens, longer than the model supports "
                            f"(max_length={self.max_length})")
        inputs = context + continuation[:-1]
        return _Request(index, context, continuation, sequence_modes(self.schedule, inputs))

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
        for row, r in enumerate(batch):
            n, k = len(r.inputs), len(r.continuation)
            results[r.index] = _score(logits[row, n - k : n], r.continuation)
            self._log(tags[r.index], r, [logits[row, :n]], modes[:, row, :n])

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
        for row, (g, r) in enumerate(members):
            pieces, modes = [ctx_logits[g]], [ctx_modes[:, g]]    # [Lc, V], [L, Lc]
            if len(tails[row]) > 0:
                pieces.append(tail_logits[row, : len(tails[row])])
                modes.append(tail_modes[:, row, : len(tails[row])])
            results[r.index] = _score(torch.cat([pieces[0][-1:], *pieces[1:]]), r.continuation)
            self._log(tags[r.index], r, pieces, torch.cat(modes, dim=1))

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
        the model's sampler (`oryx.model.sampling.sample`: temperature, top_k). Modes: the prompt's `sequence_modes`, then the
        schedule at each decoded position (as `model.generate` does)."""
        if max_new_tokens < 0:
            raise OryxError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        for i, p in enumerate(prompts):
            if not p:
                raise OryxError(f"prompt {i} is empty")
            if len(p) + max_new_tokens - 1 > self.max_length:
                raise OryxError(f"prompt {i} has {len(p)} tokens; with max_gen_toks={max_new_tokens} that is longer "
                                f"than the model supports (max_length={self.max_length})")
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


def _score(logits: torch.Tensor, targets: list[int]) -> tuple[float, bool]:
    """logits [k, V] of the positions that predict targets [k] -> (sum of log p(target), all greedy)."""
    logits = upcast(logits)
    t = torch.tensor(targets, device=logits.device)
    logp = logits.gather(-1, t[:, None])[:, 0] - torch.logsumexp(logits, -1)
    return float(logp.sum()), bool((logits.argmax(-1) == t).all())
