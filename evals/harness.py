"""The `oryx` model of lm-evaluation-harness: an Oryx checkpoint with its own tokenizer.

    oryx eval lm --model_args pretrained=DIR,schedule=last:64 --tasks ...   (lm-eval's CLI, model oryx)

    from evals.harness import OryxLM
    lm = OryxLM(pretrained="runs/out/smoke", schedule="chunks:128:0.1", batch_size=16, log_modes=8)
    results = lm_eval.simple_evaluate(model=lm, tasks=["oryx_cloze"], task_manager=...)
    lm.mode_log.fractions("oryx_cloze")        # the measured attention fraction of that task

Subclasses TemplateLM (tokenization of context/continuation pairs, empty contexts) and overrides only
what differs: the three request types run through `evals.scoring.Scorer`, which batches requests,
reuses a shared context's computation, and counts every position's mode in `mode_log`.

Inputs longer than max_length are truncated from the left as lm-eval's HFLM truncates them (one warning
per log-likelihood phase, or per group of generation settings, logger `oryx.evals`): a loglikelihood request keeps its whole continuation and the newest
tokens of its context, a generation prompt its last max_length - max_gen_toks tokens (see
`evals.scoring`). Progress bars: one per phase, off when lm-eval passes disable_tqdm.

model_args (OryxLMArgs): pretrained, schedule, dtype, device, batch_size, max_batch_size, max_length,
log_modes, reuse_prefix, seed. On the command line a schedule holding commas (`spans:0-9,20-29`) is
quoted: `--model_args pretrained=DIR "schedule='spans:0-9,20-29'"`.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from typing import Any, Literal

# lm_eval.models registers lm-eval's own models; its registry imports it only while empty, so
# registering `oryx` first would hide hf, dummy, vllm, ...
import lm_eval.models  # noqa: F401
import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from evals.loading import Loaded, load_checkpoint
from evals.modelog import ModeLog, Tag
from evals.schedule import resolve_schedule, schedule_name
from evals.scoring import Scorer
from oryx.errors import OryxError

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_GEN_TOKS = 256
# generation kwargs of lm-eval tasks this model honours (others are refused, never silently ignored)
GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_k", "top_p"}
#: While `oryx eval lm` runs lm-eval, the list every OryxLM built appends itself to (the command then
#: logs each model's mode log); None otherwise.
CREATED: ContextVar[list | None] = ContextVar("oryx_lm_created", default=None)


class OryxLMArgs(BaseModel):
    """The `model_args` of the `oryx` model."""

    model_config = ConfigDict(extra="forbid")

    pretrained: str = Field(description="model directory, or a training output directory (its newest checkpoint)")
    schedule: str = Field("native", description="mode schedule spec (oryx.routing), or 'native' for the checkpoint's own modes")
    dtype: Literal["auto", "float32", "bfloat16", "float16", "float64"] = Field(
        "auto", description="weights and activations; auto = bfloat16 on CUDA, float32 on CPU")
    device: str | None = Field(None, description="cpu, cuda, cuda:N; default cuda when available, else cpu")
    batch_size: int | str = Field(DEFAULT_BATCH_SIZE, description="sequences per forward; 'auto' = max_batch_size or 32")
    max_batch_size: int | None = Field(None, ge=1, description="the batch size 'auto' means")
    max_length: int | None = Field(None, ge=2, description="longest sequence (rolling windows too); default the "
                                   "config's max_seq_len (rolling windows: its train_seq_len when known)")
    log_modes: int = Field(0, ge=0, description="keep per-token mode rows of the first N examples of each task")
    reuse_prefix: bool = Field(True, description="run a context shared by several requests once")
    seed: int = Field(1234, description="seed of the sampler for do_sample generation")
    trust_remote_code: bool = Field(False, description="accepted for lm-eval's --trust_remote_code; nothing remote is run")


@register_model("oryx")
class OryxLM(TemplateLM):
    """An Oryx checkpoint under one mode schedule (see the module docstring)."""

    def __init__(self, **model_args: Any):
        super().__init__()
        self.args = args = OryxLMArgs.model_validate(model_args)
        loaded = load_checkpoint(args.pretrained, args.device, args.dtype)
        _check(loaded, args)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self._device = next(self.model.parameters()).device
        self.checkpoint, self.train_run_id = str(loaded.directory), loaded.train_run_id
        config = self.model.config
        self.schedule = resolve_schedule(config, args.schedule)
        self.mode_log = ModeLog(config.n_layers, sample=args.log_modes)
        self.scorer = Scorer(self.model, self.schedule, _batch_size(args), self.mode_log,
                             max_length=self.max_length, reuse_prefix=args.reuse_prefix)
        self._tags: list[Tag] | None = None
        if (created := CREATED.get()) is not None:
            created.append(self)

    # ---- what TemplateLM asks for ----------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.bos_id

    @property
    def max_length(self) -> int:
        return self.args.max_length or self.model.config.max_seq_len

    @property
    def rolling_window(self) -> int:
        """Window of loglikelihood_rolling: max_length when given, else the length the model was trained
        on (scoring past it measures length extrapolation, not the model), else max_seq_len."""
        return self.args.max_length or self.model.config.train_seq_len or self.model.config.max_seq_len

    @property
    def tokenizer_name(self) -> str:
        return f"oryx-{self.tokenizer.name}-{self.tokenizer.vocab_size}"

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string)

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special=skip_special_tokens)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """TemplateLM's, remembering which task and example each request belongs to (for the logs)."""
        self._tags = [_tag(r) for r in requests]
        try:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._tags = None

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """requests: ((context, continuation), context ids, continuation ids) -> (logprob, is_greedy).
        Too long a request loses the oldest tokens of its context (HFLM's left truncation); a tqdm bar
        ("Running loglikelihood requests") advances per batch unless disable_tqdm."""
        tags = self._tags or [Tag("", i) for i in range(len(requests))]
        pairs = [(list(ctx), list(cont)) for _, ctx, cont in requests]
        results = self.scorer.loglikelihood(pairs, tags, progress=not disable_tqdm)
        for (key, _, _), result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts, in disjoint windows of up to `rolling_window` tokens (each window
        but the first conditioned on the tokens before it, lm-eval's rolling scheme). One tqdm bar over
        the texts, advancing as the last window of each is scored, unless disable_tqdm."""
        pairs, tags, owner = [], [], []
        for i, request in enumerate(requests):
            (text,) = request.args
            windows = get_rolling_token_windows(self.tok_encode(text), self.prefix_token_id, self.rolling_window, 1)
            for w, window in enumerate(windows):
                pairs.append(make_disjoint_window(window))
                tag = _tag(request)
                tags.append(Tag(tag.task, tag.example, w))
                owner.append(i)
        left = Counter(owner)  # windows of each text not yet scored
        with tqdm(total=len(requests), desc="Running loglikelihood_rolling requests", disable=disable_tqdm) as bar:
            bar.update(len(requests) - len(left))  # texts without windows

            def scored(indices: list[int]) -> None:
                for j in indices:
                    left[owner[j]] -= 1
                    if left[owner[j]] == 0:
                        bar.update(1)

            scores = self.scorer.loglikelihood(pairs, tags, progress=scored)
        totals = [0.0] * len(requests)
        for i, (logprob, _) in zip(owner, scores):
            totals[i] += logprob
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Decode each context until a stop sequence, eos or max_gen_toks; greedy unless do_sample. A
        context longer than max_length - max_gen_toks tokens keeps its last that many (HFLM)."""
        outputs: list[str] = [""] * len(requests)
        by_kwargs: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_kwargs.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        for indices in tqdm(list(by_kwargs.values()), desc="generation", disable=disable_tqdm):
            kwargs = requests[indices[0]].args[1]
            until, settings = self._generation_settings(kwargs)
            prompts = [self.tok_encode(requests[i].args[0]) or [self.prefix_token_id] for i in indices]
            stop = self._stop_at(until) if until else None
            generated = self.scorer.generate(prompts, [_tag(requests[i]) for i in indices], stop=stop,
                                             eos_id=self.eot_token_id, **settings)
            for i, ids in zip(indices, generated):
                text = self.tok_decode(ids)
                for s in until:
                    text = text.split(s)[0]
                outputs[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return outputs

    def _stop_at(self, until: list[str]):
        """A stop test for Scorer.generate: the decoded text so far holds one of `until`."""
        return lambda ids: any(s in self.tok_decode(ids) for s in until)

    def _generation_settings(self, kwargs: dict) -> tuple[list[str], dict]:
        """lm-eval generation kwargs -> (stop strings, Scorer.generate settings)."""
        unknown = sorted(set(kwargs) - GEN_KWARGS)
        if unknown:
            raise OryxError(f"generation kwargs {', '.join(unknown)} are not supported by the oryx model "
                            f"(supported: {', '.join(sorted(GEN_KWARGS))})")
        if kwargs.get("top_p", 1.0) < 1.0:
            raise OryxError(f"top_p={kwargs['top_p']} (nucleus sampling) is not supported by the oryx model")
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else [s for s in until if s]
        temperature = float(kwargs.get("temperature", 1.0 if kwargs.get("do_sample") else 0.0))
        greedy = not kwargs.get("do_sample", False) or temperature == 0.0
        generator = torch.Generator(self._device).manual_seed(self.args.seed)
        return until, {
            "max_new_tokens": int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
            "temperature": 0.0 if greedy else temperature,
            "top_k": kwargs.get("top_k"),
            "generator": generator,
        }

    # ---- what lm-eval records about the model ----------------------------------------------------
    def get_model_info(self) -> dict:
        """Added to lm-eval's results['config']: checkpoint, schedule, family and the measured
        attention fraction of every task this model evaluated."""
        return {"oryx": {
            "checkpoint": self.checkpoint,
            "schedule": schedule_name(self.schedule),
            "family": self.model.config.family,
            "attention_fraction": {task: self.mode_log.fractions(task) for task in self.mode_log.tasks()},
        }}


def _tag(request) -> Tag:
    """The task, example (doc id) and request index (e.g. the answer choice) of an lm-eval Instance."""
    return Tag(request.task_name or "", int(request.doc_id or 0), int(request.idx or 0))


def _check(loaded: Loaded, args: OryxLMArgs) -> None:
    """What lm-eval needs of a checkpoint: a tokenizer that fits the model, a max_length it supports."""
    config, tokenizer = loaded.model.config, loaded.tokenizer
    if tokenizer is None:
        raise OryxError(f"{args.pretrained} has no tokenizer (a model trained on a synthetic task reads "
                        f"token ids, not text): evaluate it with `oryx eval retrieval`")
    if tokenizer.vocab_size > config.vocab_size:
        raise OryxError(f"the tokenizer of {args.pretrained} has {tokenizer.vocab_size} ids but the model only "
                        f"{config.vocab_size}")
    if args.max_length is not None and args.max_length > config.max_seq_len:
        raise OryxError(f"max_length={args.max_length} is longer than the model supports "
                        f"(max_seq_len={config.max_seq_len})")


def _batch_size(args: OryxLMArgs) -> int:
    """An integer batch size; lm-eval's 'auto' / 'auto:N' become max_batch_size (or 32)."""
    value = args.batch_size
    if isinstance(value, str):
        if value.startswith("auto"):
            return args.max_batch_size or 32
        try:
            value = int(value)
        except ValueError:
            raise OryxError(f"batch_size must be an integer or 'auto', got {value!r}") from None
    if value < 1:
        raise OryxError(f"batch_size must be >= 1, got {value}")
    return value
