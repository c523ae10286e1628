"""What is particular to RetNet's retention (its generic checks run from the registry in test_linear.py):
it is the Mamba-2 recurrence with a constant decay, its reference is the paper's parallel form, and its
decays are the paper's."""

from __future__ import annotations

import pytest
import torch

from oryx import OryxForCausalLM, count_parameters, presets
from oryx.errors import OryxError
from oryx.model.reads import RetNetRead
from oryx.ops import mamba2_recurrence
from oryx.ops.retnet import example_inputs, retnet_recurrence
from tests.utils import assert_close


@pytest.mark.parametrize(("B", "T", "H", "K", "V"), [
    pytest.param(1, 1, 1, 4, 4, id="B1-T1-H1-K4-V4"),
    pytest.param(2, 23, 3, 8, 5, id="B2-T23-H3-K8-V5"),
])
def test_reference_equals_the_mamba2_reference_with_a_constant_decay(B, T, H, K, V):
    """The parallel form (retnet naive.py) against the Mamba-2 loop over time fed g_t = log γ at every
    position: two references written independently, forward and backward (decay included)."""
    x = example_inputs(B, T, H, K, V, torch.float64)
    x["log_decay"].requires_grad_()
    o, s = retnet_recurrence(**x, scale=0.6, output_final_state=True, backend="naive")
    g = x["log_decay"].expand(B, T, H)
    ro, rs = mamba2_recurrence(x["q"], x["k"], x["v"], g, 0.6, x["initial_state"], True, backend="naive")
    assert_close("o", ro, o, 1e-12)
    assert_close("final state", rs, s, 1e-12)
    do, ds = torch.randn_like(o), torch.randn_like(s)
    grads = torch.autograd.grad((o * do).sum() + (s * ds).sum(), list(x.values()))
    ref = torch.autograd.grad((ro * do).sum() + (rs * ds).sum(), list(x.values()))
    for name, r, a in zip(x, ref, grads):
        assert_close(f"d{name}", r, a, 1e-12)


def test_decays_are_retnets():
    """Eight heads: γ_h = 1 − 2^-(5+h), the paper's; any head count spans the same range in order."""
    assert_close("γ", 1 - 2.0 ** -(5 + torch.arange(8.0)), RetNetRead.log_decays(8, "cpu").exp(), 1e-7)
    g = RetNetRead.log_decays(64, "cpu").exp()
    assert bool((g.diff() > 0).all()) and float(g[0]) == pytest.approx(1 - 2**-5) and float(g[-1]) == pytest.approx(1 - 2**-12)


def test_a_decay_of_the_wrong_shape_is_a_named_error():
    x = {n: t.detach() for n, t in example_inputs(1, 4, 2, 4, 4).items()}
    with pytest.raises(OryxError, match=r"log_decay must be \[H\] = \[2\]"):
        retnet_recurrence(**{**x, "log_decay": torch.zeros(1, 4, 2)})


def test_retention_adds_no_parameters_beyond_its_query():
    """Its mixer-specific parameters are the attention and linear queries and the query conv alone."""
    cfg = presets.get("oryx-retnet-tiny")
    with torch.device("meta"):
        lin = OryxForCausalLM(cfg).layers[0].mixer.lin
        counts = count_parameters(OryxForCausalLM(cfg))
    assert sorted(n.split(".")[0] for n, _ in lin.named_parameters()) == ["q_conv", "q_conv", "q_proj"]
    assert counts["mixer_specific"] > 0 and counts["tied_fraction"] >= 0.9
