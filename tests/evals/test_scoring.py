"""evals.scoring against plain references: loglikelihood = per-token log-probabilities of one plain
forward; greedy generation = step-by-step argmax; stop conditions; sampling; the repeated prefix cache."""

from __future__ import annotations

import pytest
import torch

from evals.modelog import ModeLog, Tag
from evals.schedule import resolve_schedule
from evals.scoring import Scorer
from oryx import OryxForCausalLM, presets
from oryx.errors import OryxError
from tests.utils import assert_close

V = 259
ORYX_SCHEDULES = ["native", "last:4", "chunks:4:0.5", "spans:2-5,9-12", "all_attention"]
# every schedule kind on Oryx-Mamba2, two on Oryx-GDN (the same code path but its own recurrence), and the
# baselines in their native modes
CASES = (
    [pytest.param("oryx-mamba2", s, id=f"oryx-mamba2-{s}") for s in ORYX_SCHEDULES]
    + [pytest.param("oryx-gdn", s, id=f"oryx-gdn-{s}") for s in ("last:4", "spans:2-5,9-12")]
    + [pytest.param(f, "native", id=f"{f}-native") for f in ("transformer", "mamba2", "hybrid-mamba2")]
)


def tiny(family: str) -> OryxForCausalLM:
    """float64 tiny model, chunk size 8 (so chunk boundaries fall inside the sequences)."""
    return OryxForCausalLM(presets.get(f"{family}-tiny", vocab_size=V, chunk_size=8)).double().eval()


def scorer(model, spec, batch_size=3, reuse_prefix=True, sample=0) -> Scorer:
    log = ModeLog(model.config.n_layers, sample=sample)
    return Scorer(model, resolve_schedule(model.config, spec), batch_size, log, reuse_prefix=reuse_prefix)


def ids(n: int) -> list[int]:
    return torch.randint(0, V, (n,)).tolist()


def requests() -> list[tuple[list[int], list[int]]]:
    """Shared contexts (two of one length: packed in one batch) with continuations of 1 and 4 tokens,
    and requests of their own."""
    pairs = []
    for ctx in (ids(1), ids(6), ids(6)):
        pairs += [(ctx, ids(k)) for k in (1, 4)]
    return [*pairs, (ids(3), ids(4)), (ids(11), ids(2))]


@torch.no_grad()
def reference(model, schedule, ctx, cont) -> tuple[float, bool]:
    """One plain forward of context + continuation[:-1] under the schedule's mask of that sequence."""
    full = torch.tensor(ctx + cont)
    inputs = full[None, :-1]
    out = model(inputs, modes=None if schedule is None else schedule.mask(inputs))
    logp = out.logits[0].log_softmax(-1)[len(ctx) - 1 :]
    targets = full[len(ctx) :]
    return float(logp.gather(-1, targets[:, None]).sum()), bool((logp.argmax(-1) == targets).all())


@pytest.mark.parametrize("reuse_prefix", [True, False], ids=["prefix-reuse", "whole"])
@pytest.mark.parametrize("family,spec", CASES)
def test_loglikelihood_equals_plain_forward(family, spec, reuse_prefix):
    model = tiny(family)
    s = scorer(model, spec, reuse_prefix=reuse_prefix)
    pairs = requests()
    got = s.loglikelihood(pairs, [Tag("t", i) for i in range(len(pairs))])
    for (ctx, cont), (logprob, greedy) in zip(pairs, got):
        ref_logprob, ref_greedy = reference(model, s.schedule, ctx, cont)
        assert_close("loglikelihood", torch.tensor(ref_logprob), torch.tensor(logprob), 1e-10)
        assert greedy == ref_greedy


@pytest.mark.parametrize("family,spec", [CASES[1], CASES[6], CASES[7]])
def test_is_greedy_true_exactly_for_the_greedy_continuation(family, spec):
    model = tiny(family)
    s = scorer(model, spec)
    ctx = ids(7)
    greedy = model.generate(torch.tensor([ctx]), 4, modes=s.schedule, temperature=0)[0, 7:].tolist()
    wrong = [*greedy[:3], (greedy[3] + 1) % V]
    (_, yes), (_, no) = s.loglikelihood([(ctx, greedy[:1]), (ctx, wrong)], [Tag("t", 0), Tag("t", 1)])
    assert yes and not no


@torch.no_grad()
def argmax_decoding(model, schedule, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding by a full forward of the whole sequence at every step (no cache)."""
    seq = torch.tensor([prompt])
    for _ in range(steps):
        logits = model(seq, modes=None if schedule is None else schedule.mask(seq)).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[0, len(prompt) :].tolist()


# `last:N` counts from the end of each call's ids, so for it the reference is the model's cached
# `generate` (DESIGN.md); position-based schedules give the same modes either way.
@pytest.mark.parametrize("family,spec", [c for c in CASES if "last" not in c.id and "all_att" not in c.id])
def test_greedy_generation_equals_step_by_step_argmax(family, spec):
    model = tiny(family)
    s = scorer(model, spec, batch_size=2)
    prompts = [ids(5), ids(9), ids(5), ids(5)]
    got = s.generate(prompts, [Tag("t", i) for i in range(4)], max_new_tokens=6)
    for prompt, generated in zip(prompts, got):
        assert generated == argmax_decoding(model, s.schedule, prompt, 6)


@pytest.mark.parametrize("family", ["oryx-mamba2", "oryx-gdn"])
def test_greedy_generation_with_last_n_equals_model_generate(family):
    model = tiny(family)
    s = scorer(model, "last:3", batch_size=2)
    prompts = [ids(6), ids(6), ids(4)]
    got = s.generate(prompts, [Tag("t", i) for i in range(3)], max_new_tokens=5)
    for prompt, generated in zip(prompts, got):
        ref = model.generate(torch.tensor([prompt]), 5, modes="last:3", temperature=0)[0, len(prompt) :]
        assert generated == ref.tolist()


def test_generation_stops_at_stop_eos_and_max_tokens():
    model = tiny("oryx-mamba2")
    s = scorer(model, "chunks:4:0.5", batch_size=4)
    prompts = [ids(5) for _ in range(4)]
    tags = [Tag("t", i) for i in range(4)]
    free = s.generate(prompts, tags, max_new_tokens=8)
    assert all(len(g) == 8 for g in free)
    stopped = s.generate(prompts, tags, max_new_tokens=8, stop=lambda g: g[-1] == free[0][2])
    assert stopped[0] == free[0][: free[0].index(free[0][2]) + 1]
    for full, cut in zip(free, stopped):  # every row stops at its first stop token, or runs to the end
        assert cut == full[: len(cut)] and (len(cut) == 8 or cut[-1] == free[0][2])
    eos = s.generate(prompts, tags, max_new_tokens=8, eos_id=free[1][3])
    assert eos[1] == free[1][: free[1].index(free[1][3])]  # eos itself is not returned


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = tiny("oryx-gdn")
    s = scorer(model, "last:4", batch_size=2)
    prompts, tags = [ids(6), ids(6)], [Tag("t", 0), Tag("t", 1)]
    greedy = s.generate(prompts, tags, max_new_tokens=10)

    def sample(seed, **kw):
        return s.generate(prompts, tags, max_new_tokens=10, generator=torch.Generator().manual_seed(seed), **kw)

    assert sample(0, temperature=1.0, top_k=1) == greedy
    assert sample(3, temperature=5.0) == sample(3, temperature=5.0)
    assert sample(3, temperature=5.0) != greedy


MAX = 16  # max_length of the truncation tests
# schedules whose mode of a position does not depend on the sequence's length (so step-by-step argmax
# gives the greedy reference); position-based, so modes computed before truncation would differ
TRUNCATION_CASES = [pytest.param("oryx-mamba2", s, id=f"oryx-mamba2-{s}") for s in ("spans:2-5,9-12", "chunks:4:0.5")] + [
    pytest.param("hybrid-mamba2", "native", id="hybrid-mamba2-native")]


def short(family: str) -> OryxForCausalLM:
    """tiny(family) that supports MAX tokens."""
    return OryxForCausalLM(presets.get(f"{family}-tiny", vocab_size=V, chunk_size=8, max_seq_len=MAX)).double().eval()


def tokens_read(s: Scorer, example: int) -> list[int]:
    """The ids of the positions the model read for Tag("t", example), from the scorer's mode log."""
    frame = s.log.frame("t")
    return frame[(frame.layer == 0) & (frame.example == example)].sort_values("position")["token"].tolist()


def truncation_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oryx.evals" and r.levelname == "WARNING"]


# (context length, continuation length, context tokens the model reads): lm-eval's HFLM reads
# (context + continuation)[-(MAX + 1):][:-1] and scores the whole continuation
@pytest.mark.parametrize("ctx_len,cont_len,kept", [
    pytest.param(MAX - 1, 2, MAX - 1, id="fits-exactly"),
    pytest.param(MAX, 1, MAX, id="context-of-max-length"),
    pytest.param(MAX, 2, MAX - 1, id="one-token-over"),
    pytest.param(MAX + 1, 1, MAX, id="context-one-over-max-length"),
    pytest.param(3 * MAX, 5, MAX - 4, id="long-context"),
    pytest.param(7, MAX, 1, id="continuation-of-max-length"),
])
@pytest.mark.parametrize("reuse_prefix", [True, False], ids=["prefix-reuse", "whole"])
@pytest.mark.parametrize("family,spec", TRUNCATION_CASES)
def test_long_loglikelihood_requests_are_truncated_from_the_left(family, spec, reuse_prefix, ctx_len, cont_len,
                                                                 kept, caplog):
    """Log-probs and greedy flags are those of a plain forward of the kept tokens, under the modes of the
    kept sequence; two continuations of one long context still share its (truncated) computation."""
    model = short(family)
    s = scorer(model, spec, reuse_prefix=reuse_prefix, sample=3)
    ctx = ids(ctx_len)
    greedy = argmax_decoding(model, s.schedule, ctx[-kept:], cont_len)  # greedy after the kept context
    pairs = [(ctx, greedy), (ctx, ids(cont_len)), (ids(3), ids(2))]
    got = s.loglikelihood(pairs, [Tag("t", i) for i in range(len(pairs))])
    for i, ((c, cont), (logprob, is_greedy)) in enumerate(zip(pairs[:2], got)):
        assert tokens_read(s, i) == c[-kept:] + cont[:-1]
        ref_logprob, ref_greedy = reference(model, s.schedule, c[-kept:], cont)
        assert_close("loglikelihood", torch.tensor(ref_logprob), torch.tensor(logprob), 1e-10)
        assert is_greedy == ref_greedy
    assert got[0][1]  # greedy given the kept context
    assert got[2] == pytest.approx(reference(model, s.schedule, *pairs[2]), abs=1e-10)  # untouched
    expected = [f"2 of 3 loglikelihood requests do not fit max_length={MAX}"] if kept < ctx_len else []
    assert [m[: len(expected[0])] for m in truncation_warnings(caplog)] == expected  # one, not one per request


def test_truncated_requests_share_their_truncated_context():
    """Four 4-token continuations of one 40-token context (MAX 16): its last 13 tokens are run once; a
    2-token continuation of it keeps 15 context tokens, another context, so it runs on its own."""
    model = short("oryx-mamba2")
    seen = []
    model.embed.register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    ctx = ids(40)
    pairs = [(ctx, ids(4)) for _ in range(4)] + [(ctx, ids(2))]
    for reuse, expected in ((True, 13 + 4 * 3 + MAX), (False, 5 * MAX)):
        seen.clear()
        s = scorer(model, "spans:2-5,9-12", batch_size=8, reuse_prefix=reuse)
        got = s.loglikelihood(pairs, [Tag("t", i) for i in range(len(pairs))])
        assert sum(seen) == expected
        for (c, cont), (logprob, _) in zip(pairs, got):
            kept = MAX + 1 - len(cont)
            assert logprob == pytest.approx(reference(model, s.schedule, c[-kept:], cont)[0], abs=1e-10)


# (prompt lengths, max_new_tokens, prompt tokens kept): HFLM keeps the last max_length - max_gen_toks
@pytest.mark.parametrize("lengths,max_new,kept", [
    pytest.param([10, 4], 6, 10, id="fits-exactly"),
    pytest.param([11, 10], 6, 10, id="one-token-over"),
    pytest.param([3 * MAX, 11, 5], 6, 10, id="long-prompt"),
    pytest.param([MAX, 2], MAX - 1, 1, id="max-gen-toks-max-length-minus-1"),
])
@pytest.mark.parametrize("family,spec", TRUNCATION_CASES)
def test_long_prompts_are_truncated_from_the_left(family, spec, lengths, max_new, kept, caplog):
    """Generated ids are greedy decoding from the kept tokens (prompts cut to one length batch together)."""
    model = short(family)
    s = scorer(model, spec, batch_size=2, sample=len(lengths))
    prompts = [ids(n) for n in lengths]
    got = s.generate(prompts, [Tag("t", i) for i in range(len(prompts))], max_new_tokens=max_new)
    for i, (prompt, generated) in enumerate(zip(prompts, got)):
        assert generated == argmax_decoding(model, s.schedule, prompt[-kept:], max_new)
        assert tokens_read(s, i) == prompt[-kept:] + generated[:-1]  # the last token's output is not read
    cut = sum(n > kept for n in lengths)
    expected = [f"{cut} of {len(prompts)} prompts are longer than max_length={MAX}"] if cut else []
    assert [m[: len(expected[0])] for m in truncation_warnings(caplog)] == expected


@pytest.mark.parametrize("call,message", [
    pytest.param(lambda s: s.loglikelihood([(ids(2), ids(MAX + 1))], [Tag("t", 0)]),
                 f"continuation has {MAX + 1} tokens, more than max_length={MAX}", id="continuation-over-max-length"),
    pytest.param(lambda s: s.loglikelihood([(ids(2), [])], [Tag("t", 0)]), "at least one token", id="empty-continuation"),
    pytest.param(lambda s: s.loglikelihood([([], ids(2))], [Tag("t", 0)]), "at least one token", id="empty-context"),
    pytest.param(lambda s: s.generate([ids(3)], [Tag("t", 0)], max_new_tokens=-1), "must be >= 0", id="negative-max-new"),
    pytest.param(lambda s: s.generate([ids(3)], [Tag("t", 0)], max_new_tokens=MAX),
                 f"max_gen_toks={MAX} leaves no room for the prompt", id="max-gen-toks-of-max-length"),
    pytest.param(lambda s: s.generate([ids(3), []], [Tag("t", 0)] * 2, max_new_tokens=2), "prompt 1 is empty",
                 id="empty-prompt"),
])
def test_bad_requests_are_errors(call, message):
    with pytest.raises(OryxError, match=message):
        call(scorer(short("oryx-mamba2"), "native"))


# requests(): 2 requests of their own (run whole, batch_size at a time), 3 groups of 2 sharing a context
# of length 1, 6, 6 (packed by context length, about batch_size rows a pack, a group never split; a
# position-based schedule, so that context modes do not depend on the continuation)
@pytest.mark.parametrize("batch_size,n_batches", [(1, 2 + 3), (3, 1 + 3), (8, 1 + 2)])
def test_loglikelihood_progress(batch_size, n_batches, capsys):
    """progress=callable: every request once, a batch at a time; progress=True: one tqdm bar over requests."""
    s = scorer(tiny("oryx-mamba2"), "spans:2-5,9-12", batch_size=batch_size)
    pairs = requests()
    tags = [Tag("t", i) for i in range(len(pairs))]
    batches = []
    s.loglikelihood(pairs, tags, progress=batches.append)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    assert len(batches) == n_batches
    assert "Running loglikelihood requests" not in capsys.readouterr().err
    s.loglikelihood(pairs, tags, progress=True)
    err = capsys.readouterr().err
    assert err.count("Running loglikelihood requests") >= 1 and f"{len(pairs)}/{len(pairs)}" in err


def test_shared_context_is_run_once():
    """Prefix reuse: four continuations of one 40-token context read 40 + tails positions, not 4 x 40."""
    model = tiny("oryx-mamba2")
    seen = []
    model.embed.register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    ctx = ids(40)
    pairs = [(ctx, ids(3)) for _ in range(4)]
    for reuse, expected in ((True, 40 + 4 * 2), (False, 4 * 42)):
        seen.clear()
        scorer(model, "last:8", batch_size=8, reuse_prefix=reuse).loglikelihood(pairs, [Tag("t", i) for i in range(4)])
        assert sum(seen) == expected


@pytest.mark.parametrize("family", ["oryx-mamba2", "oryx-gdn", "transformer", "mamba2"])
def test_repeated_cache_continues_each_copy_like_a_full_forward(family):
    model = tiny(family)
    prefix = torch.randint(0, V, (2, 9))
    cache = model.new_cache(2)
    model(prefix, cache=cache)
    counts = [2, 3]
    copies = cache.repeat(counts)
    suffix = torch.randint(0, V, (5, 4))
    got = model(suffix, cache=copies).logits
    rows = prefix.repeat_interleave(torch.tensor(counts), 0)
    ref = model(torch.cat([rows, suffix], 1)).logits[:, 9:]
    assert_close("logits", ref, got, 1e-10)
    # the original cache is untouched and still continues its own rows
    again = model(suffix[:2], cache=cache).logits
    assert_close("original", model(torch.cat([prefix, suffix[:2]], 1)).logits[:, 9:], again, 1e-10)


def test_repeat_needs_one_count_per_row():
    cache = tiny("oryx-mamba2").new_cache(2)
    with pytest.raises(ValueError, match="one count >= 0 per cached row"):
        cache.repeat([1, 2, 3])


@pytest.mark.parametrize("case", ["max-tokens", "stop", "eos"])
def test_generation_logs_the_positions_it_read(case):
    """The prompt, then every generated token whose output was read to draw the next one."""
    model = tiny("oryx-mamba2")
    prompt, tag = ids(5), [Tag("t", 0)]
    free = scorer(model, "native").generate([prompt], tag, max_new_tokens=4)[0]
    settings = {"max-tokens": {}, "stop": {"stop": lambda g: len(g) == 2}, "eos": {"eos_id": free[2]}}[case]
    s = scorer(model, "chunks:2:0.5", sample=1)
    out = s.generate([prompt], tag, max_new_tokens=4, **settings)[0]
    read = {"max-tokens": 3, "stop": 1, "eos": free.index(free[2])}[case]  # eos: its own draw read one more
    assert out == free[: {"max-tokens": 4, "stop": 2, "eos": free.index(free[2])}[case]]
    frame = s.log.frame("t")
    rows = frame[frame.layer == 0].sort_values("position")
    assert rows["token"].tolist() == prompt + free[:read]
    assert rows["correct"].notna().tolist() == [True] * 4 + [False] * (read + 1)
