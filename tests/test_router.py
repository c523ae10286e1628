"""The learned router (issue 17): specs and their errors, causality, decoding == parallel, the budget on
held-out data, the straight-through gradient against the relaxed reference, checkpoints, parameter
counts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from oryx import OryxError, OryxForCausalLM, count_parameters, presets, routing
from oryx.data.synthetic.mqar import MQARConfig
from oryx.model.mixer import OryxMixer
from oryx.routing.router import P_FLOOR, Learned, threshold_for
from tests.utils import assert_close

ROUTERS = {"per-layer": {"shared": False, "hidden": 16}, "shared": {"shared": True, "hidden": 16},
           "linear": {"shared": False, "hidden": 0}}


def routed(family: str = "oryx-mamba2", router: dict | None = None, **overrides) -> OryxForCausalLM:
    """A float64 tiny model (3 layers unless overridden, short chunks) with a learned router, in eval mode."""
    router = {**ROUTERS["per-layer"], **(router or {})}
    cfg = presets.get(f"{family}-tiny", **{"chunk_size": 8, "n_layers": 3, "router": router, **overrides})
    return OryxForCausalLM(cfg).double().eval()


def calibrated(model: OryxForCausalLM, T: int = 32) -> OryxForCausalLM:
    """The model calibrated on fresh random ids ([16, T])."""
    model.calibrate_router([torch.randint(0, model.config.vocab_size, (16, T))])
    return model


ONE_TARGET = {"targets": [0.25]}  # one fraction to calibrate: a third of the forwards of the default three


# ---- specs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["learned:0.1", "learned:0.05:3", "learned:1", "learned:0:0"])
def test_spec_round_trip(spec):
    schedule = routing.parse(spec)
    assert isinstance(schedule, Learned) and schedule.needs_hidden
    assert str(schedule) == spec and routing.parse(str(schedule)) == schedule


BAD_SPECS = [
    pytest.param("learned", "takes 1 to 2 field(s), got 0", id="no-target"),
    pytest.param("learned:0.1:2:3", "takes 1 to 2 field(s), got 3", id="too-many-fields"),
    pytest.param("learned:1.5", "TARGET must be between 0 and 1", id="target-above-1"),
    pytest.param("learned:abc", "TARGET must be a number between 0 and 1", id="target-not-a-number"),
    pytest.param("learned:0.1:-1", "WEIGHT must be a finite number >= 0", id="negative-weight"),
    pytest.param("learned:0.1:inf", "WEIGHT must be a finite number >= 0", id="infinite-weight"),
    pytest.param("learned:0.1:x", "WEIGHT must be a number >= 0", id="weight-not-a-number"),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS)
def test_bad_specs_are_named_errors(spec, message):
    with pytest.raises(OryxError, match="learned") as e:
        routing.parse(spec)
    assert message in str(e.value)


def test_bad_router_spec_on_the_command_line_is_one_error_line(tmp_path):
    spec, message = "learned:2", "TARGET must be between 0 and 1"
    model = routed().float()
    model.save_pretrained(tmp_path / "m")
    done = subprocess.run([sys.executable, "-m", "oryx", "generate", str(tmp_path / "m"), "--ids", "1,2,3",
                           "--max-new-tokens", "2", "--schedule", spec], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


@pytest.mark.parametrize("case, message", [
    pytest.param("no-router", "needs a model with a learned router", id="model-without-router"),
    pytest.param("uncalibrated", "is not calibrated", id="never-calibrated"),
    pytest.param("other-target", "keeps thresholds for fractions 0.25 only", id="target-not-calibrated"),
    pytest.param("mask-from-ids", "decides inside the model", id="mask-without-the-model"),
])
def test_misuse_is_a_named_error(case, message):
    ids = torch.randint(0, 256, (2, 12))
    with pytest.raises(OryxError, match=message):
        if case == "no-router":
            OryxForCausalLM(presets.get("oryx-mamba2-tiny"))(ids, modes="learned:0.1")
        elif case == "uncalibrated":
            routed()(ids, modes="learned:0.1")
        elif case == "other-target":
            calibrated(routed(router=ONE_TARGET))(ids, modes="learned:0.1")
        else:
            routing.parse("learned:0.1").mask(ids)


def test_router_on_a_model_without_dual_layers_is_a_config_error():
    with pytest.raises(ValueError, match="nothing to route"):
        presets.get("transformer-tiny", router={})


# ---- causality and decoding -------------------------------------------------------------------------------
@pytest.mark.parametrize("family, router", [
    pytest.param("oryx-mamba2", "per-layer", id="mamba2-per-layer"), pytest.param("oryx-gdn", "per-layer", id="gdn-per-layer"),
    pytest.param("oryx-mamba2", "shared", id="mamba2-shared"), pytest.param("oryx-mamba2", "linear", id="mamba2-linear"),
])
def test_a_future_token_never_changes_a_past_decision(family, router):
    model = calibrated(routed(family, {**ROUTERS[router], **ONE_TARGET}))
    B, T, p = 4, 40, 17
    ids = torch.randint(0, 256, (B, T))
    changed = ids.clone()
    changed[:, p:] = torch.randint(0, 256, (B, T - p))
    a, b = model(ids, modes="learned:0.25"), model(changed, modes="learned:0.25")
    assert torch.equal(a.modes[:, :, :p], b.modes[:, :, :p])
    # scores agree to rounding (the packed attention of later positions may sum in another order)
    assert_close("past scores", a.router_scores[:, :, :p], b.router_scores[:, :, :p], 1e-12)
    assert not torch.equal(a.router_scores[:, :, p:], b.router_scores[:, :, p:])  # the router reads its input
    assert 0 < a.modes.sum() < a.modes.numel()  # both modes ran: the decisions were not trivial


@pytest.mark.parametrize("split", [[1] * 16, [9, 1, 1, 1, 1, 1, 1, 1], [4, 1, 7, 1, 3]],
                         ids=["one-step-at-a-time", "prefill-then-decode", "ragged-prefills"])
@pytest.mark.parametrize("router", ["per-layer", "shared"])
def test_decoding_equals_parallel_forward_with_learned_routing(router, split):
    model = calibrated(routed(router={**ROUTERS[router], **ONE_TARGET}))
    B, T = 3, sum(split)
    ids = torch.randint(0, 256, (B, T))
    full = model(ids, modes="learned:0.25")
    cache, logits, modes, scores, at = model.new_cache(B), [], [], [], 0
    for n in split:
        out = model(ids[:, at:at + n], modes="learned:0.25", cache=cache)
        logits.append(out.logits), modes.append(out.modes), scores.append(out.router_scores)
        at += n
    assert torch.equal(torch.cat(modes, -1), full.modes)
    assert_close("router scores", full.router_scores, torch.cat(scores, -1), 1e-10)
    assert_close("logits", full.logits, torch.cat(logits, 1), 1e-10)
    assert 0 < full.modes.sum() < full.modes.numel()


def test_generate_with_learned_routing_runs_the_parallel_decisions():
    model = calibrated(routed(router=ONE_TARGET))
    prompt = torch.randint(0, 256, (2, 9))
    ids, modes = model.generate(prompt, 7, modes="learned:0.25", temperature=0, return_modes=True)
    assert torch.equal(model(ids[:, :-1], modes="learned:0.25").modes, modes)


# ---- the budget ---------------------------------------------------------------------------------------------
# Calibrated on 256 MQAR examples (16k positions per layer), measured on 256 others of the same task: a
# fraction measured on n positions varies by about sqrt(f (1 - f) / n) <= 0.004 per set, more where
# positions of one sequence move together; 0.02 is about four times the spread of the two sets together.
BUDGET_TOLERANCE = 0.02


@pytest.mark.parametrize("router, target", [pytest.param("per-layer", 0.05, id="per-layer-5%"),
                                            pytest.param("shared", 0.25, id="shared-25%")])
def test_budget_holds_on_held_out_data(router, target):
    model = routed(router={**ROUTERS[router], "targets": [target]}, n_layers=2).float()
    task = dict(vocab_size=256, input_seq_len=64, num_kv_pairs=8, num_examples=256)
    calibration = MQARConfig(**task, seed=1).generate().input_ids
    held_out = MQARConfig(**task, seed=2).generate().input_ids
    model.calibrate_router(calibration.split(64))
    with torch.no_grad():
        modes = torch.cat([model(x, modes=Learned(target)).modes for x in held_out.split(64)], dim=1)
    per_layer = modes.float().mean((1, 2))
    assert (per_layer - target).abs().max() <= BUDGET_TOLERANCE, per_layer.tolist()


@pytest.mark.parametrize("fraction, n, above", [
    pytest.param(0.25, 100, 25, id="quarter"), pytest.param(0.1, 7, 1, id="rounds"),
    pytest.param(0.0, 10, 0, id="none"), pytest.param(1.0, 10, 10, id="all"),
])
def test_threshold_keeps_the_fraction_of_scores_above_it(fraction, n, above):
    scores = torch.randn(n)
    assert int((scores > threshold_for(scores, fraction)).sum()) == above


# ---- training: the straight-through gradient and the budget loss -------------------------------------------
def test_gate_gradient_is_the_relaxed_outputs_at_attention_positions():
    """d loss / d gate at an attention position equals d loss / d gamma of the relaxed output
    o_lin + gamma * (o_att - o_lin), computed from both modes' full outputs; zero elsewhere; the forward is
    the hard choice."""
    cfg = presets.get("oryx-mamba2-tiny", chunk_size=8)
    mixer = OryxMixer(cfg, 0).double()
    B, T = 2, 24
    x = torch.randn(B, T, cfg.d_model, dtype=torch.float64)
    mask = torch.rand(B, T) < 0.4
    weight = torch.randn(B, T, cfg.d_model, dtype=torch.float64)
    reads = []
    hook = mixer.norm.register_forward_hook(lambda m, args, out: reads.append(args[0]))
    with torch.no_grad():
        mixer(x, torch.ones(B, T, dtype=torch.bool)), mixer(x, torch.zeros(B, T, dtype=torch.bool))
    hook.remove()
    o_att, o_lin = reads
    gamma = mask.double().requires_grad_()
    relaxed = mixer.o_proj(mixer.norm(o_lin + gamma[..., None, None] * (o_att - o_lin), mixer.g_proj(x)))
    (relaxed * weight).sum().backward()

    gate = mask.double().requires_grad_()
    out = mixer(x, mask, gate=gate)
    (out * weight).sum().backward()
    assert_close("hard forward", mixer(x, mask), out, 1e-14)
    assert_close("gate gradient at attention positions", gamma.grad[mask], gate.grad[mask], 1e-10)
    assert torch.equal(gate.grad[~mask], torch.zeros_like(gate.grad[~mask]))


def test_router_gradient_estimate_is_unbiased():
    """E over d ~ Bernoulli(p) of d / p (the gate's derivative in p, times the branch difference) is 1."""
    router = routed().router
    x = torch.randn(4000, 1, 64, dtype=torch.float64)
    torch.manual_seed(0)
    decision = router.decide(x, 0, 0.1, training=True)
    p = decision.probs.detach()
    assert (p > P_FLOOR).all()
    (dgate,) = torch.autograd.grad(decision.gate.sum(), decision.probs)
    assert abs(float(dgate.mean()) - 1.0) < 0.1
    assert abs(float(decision.mask.double().mean() - p.mean())) < 0.05


def test_training_forward_draws_near_the_budget_and_reports_its_loss():
    model = routed().train()
    model.router.start_at(0.2)
    out = model(torch.randint(0, 256, (8, 64)), modes="learned:0.2:4", labels=torch.randint(0, 256, (8, 64)))
    routed_layers = out.modes[model.router.layers].float().mean((1, 2))
    assert (routed_layers - 0.2).abs().max() < 0.1
    probs = torch.sigmoid(out.router_scores)
    expected = 4 * ((0.2 - probs.mean((1, 2))) ** 2).mean()
    assert_close("budget loss", expected, out.router_loss.detach(), 1e-6)
    (out.loss + out.router_loss).backward()
    grads = [p.grad for p in model.router.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


# ---- checkpoints and parameter counts ----------------------------------------------------------------------
@pytest.mark.parametrize("router", ["per-layer", "shared"])
def test_checkpoint_keeps_router_and_calibration(tmp_path, router):
    model = calibrated(routed(router={**ROUTERS[router], **ONE_TARGET}).float())
    model.save_pretrained(tmp_path)
    back = OryxForCausalLM.from_pretrained(tmp_path).eval()
    assert back.config.router == model.config.router
    assert torch.equal(back.router.thresholds, model.router.thresholds) and back.router.calibrated.all()
    ids = torch.randint(0, 256, (2, 30))
    a, b = model(ids, modes="learned:0.25"), back(ids, modes="learned:0.25")
    assert torch.equal(a.modes, b.modes) and torch.equal(a.logits, b.logits)


def test_checkpoint_of_an_earlier_version_without_router_loads(tmp_path):
    model = OryxForCausalLM(presets.get("oryx-mamba2-tiny"))
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["router"]  # what versions before the router wrote
    (tmp_path / "config.json").write_text(json.dumps(config))
    back = OryxForCausalLM.from_pretrained(tmp_path)
    assert back.router is None and back.config.router is None


@pytest.mark.parametrize("router", list(ROUTERS))
def test_router_parameters_count_as_mixer_specific(router):
    plain = count_parameters(OryxForCausalLM(presets.get("oryx-mamba2-tiny")))
    model = OryxForCausalLM(presets.get("oryx-mamba2-tiny", router=ROUTERS[router]))
    counts = count_parameters(model)
    size = sum(p.numel() for p in model.router.parameters())
    assert counts["components"]["router-specific"] == size > 0
    assert counts["mixer_specific"] == plain["mixer_specific"] + size
    assert counts["tied_fraction"] == pytest.approx(1 - counts["mixer_specific"] / counts["total"])


def test_recalibrating_for_other_fractions_is_kept_in_the_checkpoint(tmp_path):
    model = calibrated(routed(router=ONE_TARGET).float())
    ids = torch.randint(0, 256, (16, 32))
    model.calibrate_router([ids], targets=[0.125, 0.5])
    assert model.config.router.targets == (0.125, 0.5) and model.router.calibrated.all()
    with torch.no_grad():
        half = model(ids, modes="learned:0.5").modes[model.router.layers].float().mean((1, 2))
    assert half.tolist() == [0.5] * len(model.router.layers)   # exactly the fraction on its own data
    with pytest.raises(OryxError, match=r"fractions 0\.125, 0\.5 only"):
        model(ids, modes="learned:0.25")
    model.save_pretrained(tmp_path)
    back = OryxForCausalLM.from_pretrained(tmp_path).eval()
    assert back.config.router.targets == (0.125, 0.5) and torch.equal(back.router.thresholds, model.router.thresholds)


def test_thresholds_stay_float32_in_a_bf16_model(tmp_path):
    model = calibrated(routed(router=ONE_TARGET).float())
    exact = model.router.thresholds.clone()
    model.to(torch.bfloat16)
    assert model.router.thresholds.dtype == torch.float32 and torch.equal(model.router.thresholds, exact)
    assert model.router.scorers[0].net[0].weight.dtype == torch.bfloat16
    model.save_pretrained(tmp_path)
    back = OryxForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert torch.equal(back.router.thresholds, exact)
    out = back.eval()(torch.randint(0, 256, (2, 16)), modes="learned:0.25")
    assert out.router_scores.dtype == torch.float32
