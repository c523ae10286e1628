"""The learned router on the GPU (issue 17): step decoding against the parallel forward in float32 and
bf16 with the `auto` kernels (fla-core, FlexAttention on CUDA).

The decode path runs other kernels (the step recurrence, masked SDPA) than the parallel forward, so the
router's scores differ by rounding; a decision flips only where a score sits that close to its
threshold. Checked: the scores agree within SCORE_TOL of their spread, at most FLIP_RATE of the decisions
differ, and the decoded logits equal a parallel forward run with the decoded modes (a mask) within the
mixer bounds of test_kernels.py. Run: `python -m pytest tests/gpu/test_router.py -s -q`.
"""

from __future__ import annotations

import pytest
import torch

from oryx import OryxForCausalLM, presets
from tests.utils import rel_err

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)"),
]

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]
LOGIT_TOL = {torch.float32: 5e-3, torch.bfloat16: 5e-2}
SCORE_TOL = {torch.float32: 1e-3, torch.bfloat16: 5e-2}   # of the scores' standard deviation
FLIP_RATE = {torch.float32: 0.01, torch.bfloat16: 0.01}  # a score within rounding of its threshold


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", ["oryx-mamba2", "oryx-gdn"])
def test_decoding_matches_parallel_with_learned_routing(family, dtype):
    torch.manual_seed(0)
    cfg = presets.get(f"{family}-small", router={"targets": [0.1]})
    model = OryxForCausalLM(cfg).cuda().to(dtype).eval()
    B, prompt, steps = 2, 192, 64
    model.calibrate_router([torch.randint(0, cfg.vocab_size, (8, prompt + steps), device="cuda")])
    ids = torch.randint(0, cfg.vocab_size, (B, prompt + steps), device="cuda")
    with torch.no_grad():
        full = model(ids, modes="learned:0.1")
        cache = model.new_cache(B)
        outs = [model(ids[:, :prompt], modes="learned:0.1", cache=cache)]
        outs += [model(ids[:, t:t + 1], modes="learned:0.1", cache=cache) for t in range(prompt, prompt + steps)]
        modes = torch.cat([o.modes for o in outs], -1)
        scores = torch.cat([o.router_scores for o in outs], -1)
        logits = torch.cat([o.logits for o in outs], 1)
        replay = model(ids, modes=modes)   # the parallel forward with the decoded modes
    routed = model.router.layers
    spread = full.router_scores[routed].float().std()
    score_err = float((scores[routed] - full.router_scores[routed]).abs().max() / spread)
    flips = float((modes[routed] != full.modes[routed]).float().mean())
    logit_err = rel_err(replay.logits.float(), logits.float())
    print(f"    {family} {dtype}: score err {score_err:.2e} of spread, flips {flips:.4f}, logits rel err "
          f"{logit_err:.2e}, fraction {float(full.modes[routed].float().mean()):.3f}")
    assert score_err <= SCORE_TOL[dtype]
    assert flips <= FLIP_RATE[dtype]
    assert logit_err <= LOGIT_TOL[dtype]
