"""The evaluation on a CUDA device: the same numbers as on the CPU (float32), bf16 close to them,
generation and retrieval running with every tensor on the GPU."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

from evals.harness import OryxLM
from evals.modelog import ModeLog
from evals.retrieval import build_task, evaluate
from evals.schedule import resolve_schedule
from oryx import OryxForCausalLM, presets

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)"),
]

PAIRS = [("To be, or not", " to be"), ("To be, or not", " that is"), ("", "Words, words"), ("Now is", " the winter")]


def requests(kind: str, args_list) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i, metadata=("t", i, 1)) for i, a in enumerate(args_list)]


@pytest.mark.parametrize("family", ["oryx-mamba2", "oryx-gdn", "transformer"])
def test_loglikelihood_on_cuda_matches_the_cpu(model_dirs, family):
    schedule = "native" if family == "transformer" else "chunks:4:0.5"
    cpu = OryxLM(pretrained=str(model_dirs[family]), schedule=schedule, device="cpu", dtype="float32")
    gpu = OryxLM(pretrained=str(model_dirs[family]), schedule=schedule, device="cuda", dtype="float32")
    bf16 = OryxLM(pretrained=str(model_dirs[family]), schedule=schedule, device="cuda", dtype="bfloat16")
    ref = [lp for lp, _ in cpu.loglikelihood(requests("loglikelihood", PAIRS))]
    same = [lp for lp, _ in gpu.loglikelihood(requests("loglikelihood", PAIRS))]
    close = [lp for lp, _ in bf16.loglikelihood(requests("loglikelihood", PAIRS))]
    assert same == pytest.approx(ref, rel=1e-3)
    assert close == pytest.approx(ref, rel=5e-2)
    assert gpu.mode_log.fractions() == cpu.mode_log.fractions()


def test_generation_and_sampling_on_cuda(model_dirs):
    lm = OryxLM(pretrained=str(model_dirs["oryx-mamba2"]), schedule="last:4", device="cuda", batch_size=2)
    texts = lm.generate_until(requests("generate_until", [
        ("Friends, Romans, ", {"max_gen_toks": 8, "until": ["\n"]}),
        ("Friends, Romans, ", {"max_gen_toks": 8, "until": ["\n"], "do_sample": True, "temperature": 1.0}),
    ]))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    (rolled,) = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [("Some text to score, twice over.",)]))
    assert rolled < 0


def test_retrieval_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    model = OryxForCausalLM(presets.get("oryx-gdn-tiny", vocab_size=32)).eval()
    batch = build_task("mqar", model.config, n=16, options={"num_kv_pairs": 2, "input_seq_len": 32})
    schedule = resolve_schedule(model.config, "last:8")
    cpu = evaluate(model, batch, "mqar", schedule, 8, ModeLog(2)).metrics
    gpu = evaluate(model.cuda(), batch, "mqar", schedule, 8, ModeLog(2)).metrics
    assert gpu["attention_fraction"] == cpu["attention_fraction"] == 8 / 32
    assert gpu["accuracy"] == pytest.approx(cpu["accuracy"], abs=1 / 32)  # a near tie may flip one argmax
