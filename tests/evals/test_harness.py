"""The `oryx` lm-eval model on text requests: loglikelihood, rolling windows, generation, model_args."""

from __future__ import annotations

import re

import lm_eval.api.registry
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.utils import get_rolling_token_windows
from pydantic import ValidationError

from evals.harness import OryxLM
from oryx.errors import CheckpointError, OryxError
from tests.evals.conftest import make_model_dir


def request(kind: str, args: tuple, doc_id: int = 0, idx: int = 0, task: str = "t") -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=idx, metadata=(task, doc_id, 1))


@torch.no_grad()
def plain_logprob(lm: OryxLM, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context) from one forward of the whole sequence under lm's schedule."""
    full = torch.tensor([context + continuation])
    inputs = full[:, :-1]
    modes = None if lm.schedule is None else lm.schedule.mask(inputs)
    logp = lm.model(inputs, modes=modes).logits[0].double().log_softmax(-1)[len(context) - 1 :]
    return float(logp.gather(-1, full[0, len(context) :, None]).sum())


def test_registered_as_oryx_beside_lm_evals_own_models():
    assert lm_eval.api.registry.get_model("oryx") is OryxLM
    assert lm_eval.api.registry.get_model("dummy").__name__ == "DummyLM"  # `oryx eval lm --model dummy` works


@pytest.mark.parametrize("family,schedule", [("oryx-mamba2", "last:6"), ("oryx-gdn", "chunks:4:0.5"),
                                             ("transformer", "native")])
def test_loglikelihood_of_text_equals_plain_forward(model_dirs, family, schedule):
    lm = OryxLM(pretrained=str(model_dirs[family]), schedule=schedule, batch_size=2, device="cpu")
    pairs = [("To be, or not", " to be"), ("To be, or not", " that is"), ("", "Words, words"), ("O", "!")]
    got = lm.loglikelihood([request("loglikelihood", p, doc_id=i) for i, p in enumerate(pairs)])
    enc = lm.tokenizer.encode
    for (context, continuation), (logprob, _) in zip(pairs, got):
        ctx = enc(context) if context else [lm.tokenizer.bos_id]  # an empty context reads bos
        assert logprob == pytest.approx(plain_logprob(lm, ctx, enc(continuation)), rel=1e-4, abs=1e-4)
    assert set(lm.mode_log.tasks()) == {"t"}


def test_rolling_loglikelihood_windows(model_dirs):
    """Long enough max_length: one window = a plain forward of bos + text. Short: every window <= max_length
    positions, and the sum over lm-eval's windows."""
    text = "Now is the winter of our discontent made glorious summer by this sun of York."
    whole = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), schedule="last:5", device="cpu")
    ids = whole.tokenizer.encode(text)
    (got,) = whole.loglikelihood_rolling([request("loglikelihood_rolling", (text,))])
    assert got == pytest.approx(plain_logprob(whole, [whole.tokenizer.bos_id], ids), rel=1e-4)

    short = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), schedule="last:5", max_length=16, device="cpu")
    lengths = []
    short.model.embed.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    (windowed,) = short.loglikelihood_rolling([request("loglikelihood_rolling", (text,))])
    assert max(lengths) <= 16
    expected = 0.0
    for inputs, predicted in get_rolling_token_windows(ids, short.tokenizer.bos_id, 16, 1):
        k = len(predicted)
        expected += plain_logprob(short, inputs[: len(inputs) - k + 1], predicted)
    assert windowed == pytest.approx(expected, rel=1e-4)
    assert windowed != pytest.approx(got, rel=1e-6)  # shorter windows: less context, another number


def test_rolling_windows_default_to_the_training_length(tmp_path):
    """A checkpoint that records train_seq_len is scored in windows of that length, not max_seq_len."""
    from tests.evals.conftest import make_model_dir

    lm = OryxLM(pretrained=str(make_model_dir(tmp_path / "m", "transformer", train_seq_len=12)), device="cpu")
    lengths = []
    lm.model.embed.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    lm.loglikelihood_rolling([request("loglikelihood_rolling", ("To be, or not to be, that is the question.",))])
    assert max(lengths) <= 12 and len(lengths) >= 1 and lm.max_length == lm.model.config.max_seq_len


def test_generate_until_honours_stop_sequences_and_max_gen_toks(model_dirs):
    lm = OryxLM(pretrained=str(model_dirs["oryx-gdn"]), schedule="last:3", batch_size=3, device="cpu")
    contexts = ["Friends, Romans, ", "Once more unto ", "Friends, Romans, "]
    free = lm.generate_until([request("generate_until", (c, {"max_gen_toks": 12, "until": []})) for c in contexts])
    assert free[0] == free[2]  # greedy: the same context gives the same text
    assert all(len(lm.tokenizer.encode(t)) <= 12 for t in free)
    cut = free[0][len(free[0]) // 2 :][:1]  # a character the free text holds
    stopped = lm.generate_until([request("generate_until", (contexts[0], {"max_gen_toks": 12, "until": [cut]}))])
    assert stopped == [free[0].split(cut)[0]]
    sampled = lm.generate_until([request("generate_until", (contexts[0], {"max_gen_toks": 12, "until": [],
                                                                          "do_sample": True, "top_k": 1}))])
    assert sampled == [free[0]]


@pytest.mark.parametrize("kind,args,check", [
    pytest.param("loglikelihood", ("Now is the winter of our discontent made", " glorious"), "logprob",
                 id="loglikelihood-long-context"),
    pytest.param("loglikelihood", ("Now is the wint", "er,"), "logprob", id="loglikelihood-one-over"),  # 15 + 3
    pytest.param("generate_until", ("Now is the winter of our discontent made glorious", {"max_gen_toks": 6}),
                 "generated", id="generate-long-prompt"),
])
def test_long_requests_are_truncated_from_the_left_like_hflm(model_dirs, caplog, kind, args, check):
    """max_length 16: a loglikelihood request reads (context + continuation)[-17:][:-1]; a prompt keeps
    its last 16 - max_gen_toks tokens (byte tokenizer: one token per character). One warning each."""
    lm = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), schedule="spans:2-5,9-12", max_length=16, device="cpu")
    enc = lm.tokenizer.encode
    if check == "logprob":
        context, continuation = args
        (logprob, _), = lm.loglikelihood([request(kind, args)])
        kept = enc(context + continuation)[-17:][: -len(enc(continuation))]
        assert len(kept) < len(enc(context))
        assert logprob == pytest.approx(plain_logprob(lm, kept, enc(continuation)), rel=1e-4, abs=1e-4)
    else:
        text, kwargs = args
        got = lm.generate_until([request(kind, args)])
        assert got == lm.generate_until([request(kind, (text[-(16 - kwargs["max_gen_toks"]) :], kwargs))])
    warnings = [r.getMessage() for r in caplog.records if r.name == "oryx.evals"]
    assert len(warnings) == 1 and warnings[0].startswith("1 of 1 ")


def bars(desc: str, err: str) -> int:
    """How many tqdm bars named desc were started in err (each draws its 0% line once)."""
    return len(re.findall(rf"{re.escape(desc)}: +0%", err))


@pytest.mark.parametrize("disable_tqdm", [False, True], ids=["bars", "disabled"])
def test_one_progress_bar_per_loglikelihood_phase(model_dirs, capsys, disable_tqdm):
    """loglikelihood: lm-eval's "Running loglikelihood requests" bar over requests; rolling: one bar over
    texts (none over their windows); none when lm-eval passes disable_tqdm."""
    lm = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), batch_size=2, max_length=16, device="cpu")
    pairs = [("To be, or not", " to be"), ("To be, or not", " that is"), ("O", "!")]
    lm.loglikelihood([request("loglikelihood", p, doc_id=i) for i, p in enumerate(pairs)], disable_tqdm=disable_tqdm)
    err = capsys.readouterr().err
    assert bars("Running loglikelihood requests", err) == (0 if disable_tqdm else 1)
    assert ("3/3" in err) != disable_tqdm
    texts = ["Now is the winter of our discontent made glorious summer", "by this sun of York.", "And all the clouds"]
    lm.loglikelihood_rolling([request("loglikelihood_rolling", (t,), doc_id=i) for i, t in enumerate(texts)],
                             disable_tqdm=disable_tqdm)
    err = capsys.readouterr().err
    assert "Running loglikelihood requests" not in err
    assert bars("Running loglikelihood_rolling requests", err) == (0 if disable_tqdm else 1)
    assert ("3/3" in err) != disable_tqdm


@pytest.mark.parametrize("kwargs,message", [
    pytest.param({"top_p": 0.9}, "nucleus sampling", id="top_p"),
    pytest.param({"num_beams": 4}, "num_beams are not supported", id="unknown-kwarg"),
])
def test_unsupported_generation_kwargs_are_errors(model_dirs, kwargs, message):
    lm = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), device="cpu")
    with pytest.raises(OryxError, match=message):
        lm.generate_until([request("generate_until", ("Hi", kwargs))])


def test_model_info_reports_the_measured_fractions(model_dirs):
    lm = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), schedule="all_attention", log_modes=1, device="cpu")
    lm.loglikelihood([request("loglikelihood", ("ab", "c"), task="x")])
    info = lm.get_model_info()["oryx"]
    assert info["schedule"] == "all_attention" and info["family"] == "oryx-mamba2"
    assert info["attention_fraction"]["x"]["attention_fraction"] == 1.0
    assert len(lm.mode_log.frame("x")) == 2 * 2  # 2 layers x 2 positions


@pytest.mark.parametrize("args,error,message", [
    pytest.param({"schedule": "last:8"}, OryxError, "cannot run on this transformer model", id="schedule-baseline"),
    pytest.param({"max_length": 10**6}, OryxError, "longer than the model supports", id="max-length"),
    pytest.param({"batchsize": 3}, ValidationError, "batchsize", id="unknown-arg"),
    pytest.param({"dtype": "int8"}, ValidationError, "dtype", id="bad-dtype"),
    pytest.param({"batch_size": "lots"}, OryxError, "batch_size", id="bad-batch-size"),
    pytest.param({"schedule": "sometimes"}, OryxError, "unknown schedule 'sometimes'", id="unknown-schedule"),
])
def test_bad_model_args_are_clear_errors(model_dirs, args, error, message):
    with pytest.raises(error, match=message):
        OryxLM(pretrained=str(model_dirs["transformer"]), device="cpu", **args)


def test_missing_checkpoint_and_missing_tokenizer(tmp_path):
    with pytest.raises(CheckpointError, match="no model at"):
        OryxLM(pretrained=str(tmp_path / "nothing"))
    make_model_dir(tmp_path / "m", "oryx-mamba2")
    (tmp_path / "m" / "oryx_tokenizer.json").unlink()  # as a model trained on token ids has none
    with pytest.raises(OryxError, match=r"has no tokenizer.*oryx eval retrieval"):
        OryxLM(pretrained=str(tmp_path / "m"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_without_cuda_is_an_error(model_dirs):
    with pytest.raises(OryxError, match="CUDA is not available"):
        OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), device="cuda")


@pytest.mark.parametrize(
    ("model_args", "flags", "expect"),
    [
        pytest.param({"pretrained": "m", "batch_size": "8"}, {}, {"batch_size": "8"}, id="batch-size-in-model-args"),
        pytest.param({"pretrained": "m", "device": "cpu"}, {}, {"device": "cpu", "batch_size": "16"}, id="device-in-model-args"),
        pytest.param({"pretrained": "m", "max_batch_size": "4"}, {"max_batch_size": 4}, {"max_batch_size": 4}, id="agreeing"),
        pytest.param({"pretrained": "m"}, {"batch_size": "2"}, {"batch_size": "2"}, id="flag-only"),
    ],
)
def test_device_and_batch_size_in_model_args_become_options(model_args, flags, expect):
    """lm-eval hands device/batch_size/max_batch_size to the model beside model_args (the same key twice
    was a TypeError inside lm-eval): given as model_args, they move to the options."""
    import argparse

    from evals.harness import DEFAULT_BATCH_SIZE
    from evals.lm_command import LIFTED, _apply_defaults

    ns = argparse.Namespace(**{"model": None, "model_args": dict(model_args), "device": None, "max_batch_size": None, **flags})
    _apply_defaults(ns, log_modes=0)
    assert not set(LIFTED) & set(ns.model_args) and ns.model_args["pretrained"] == "m"
    expect = {"device": "cpu", "batch_size": str(DEFAULT_BATCH_SIZE), **expect}
    assert {k: getattr(ns, k) for k in expect} == expect


def test_device_given_twice_differently_is_an_error():
    import argparse

    from evals.lm_command import _apply_defaults

    ns = argparse.Namespace(model=None, model_args={"pretrained": "m", "device": "cuda"}, device="cpu", max_batch_size=None)
    with pytest.raises(OryxError, match="--device cpu and model_args device=cuda disagree"):
        _apply_defaults(ns, log_modes=0)


def test_max_batch_size_not_a_number_is_an_error():
    import argparse

    from evals.lm_command import _apply_defaults

    ns = argparse.Namespace(model=None, model_args={"pretrained": "m", "max_batch_size": "abc"}, device=None,
                            max_batch_size=None)
    with pytest.raises(OryxError, match="model_args max_batch_size=abc is not a whole number"):
        _apply_defaults(ns, log_modes=0)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('{"mlflow_run_id": "abc"}', "abc", id="recorded"),
    pytest.param('{"step": 3}', None, id="no-run"),
    pytest.param("[1]", None, id="a-list"),
    pytest.param("{torn", None, id="not-json"),
])
def test_training_run_link_of_a_checkpoint(tmp_path, text, expected):
    """The MLflow run a checkpoint's trainer state names, or None: a damaged state is no link (loading
    the weights reports damage), never a traceback."""
    from evals.loading import _train_run_id
    from oryx.training.checkpoints import STATE_FILE

    (tmp_path / STATE_FILE).write_text(text)
    assert _train_run_id(tmp_path) == expected
