"""Every GPU path against the CPU reference, forward and backward (state gradients included), on fresh
random inputs, float32 and bf16, with outputs poisoned with NaN (conftest.py).

Run on the GPU machine: `python -m pytest tests/gpu -s -q` (the output is recorded in
benchmarks/results/gpu-tests-h200.txt). Each check prints its relative error.
"""

from __future__ import annotations

import pytest
import torch

from oryx import presets, routing
from oryx.model.cache import LayerCache
from oryx.model.kinds import KINDS
from oryx.model.mixer import OryxMixer
from oryx.ops import causal_conv1d, gated_rms_norm, rotary, sparse_attention
from tests.utils import assert_close, rel_err

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)"),
]

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]
# relative-error bounds: float32 inputs (kernels may use tf32 products), bf16 inputs
TOL = {torch.float32: 5e-3, torch.bfloat16: 3e-2}
MIXER_TOL = {torch.float32: 5e-3, torch.bfloat16: 5e-2}


def check(name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float) -> None:
    """Print the relative error (the recorded run shows every number), then assert it."""
    print(f"    {name:<28} rel err {rel_err(ref, out.cpu()):.2e}  (bound {ratio:.0e})")
    assert_close(name, ref, out.cpu(), ratio)


def reference_copies(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float64 CPU leaves holding the same (already rounded) values, requiring grad where the originals do."""
    return {n: t.detach().cpu().double().requires_grad_(t.requires_grad) for n, t in tensors.items()}


def check_gradients(outs, ref_outs, x: dict, ref: dict, ratio: float) -> None:
    """Backpropagate one fresh random cotangent per output through both sides (GPU outputs taken to
    float64), then check the gradient of every leaf in `x` that requires one against its reference copy
    in `ref`."""
    seeds = [torch.randn_like(r) for r in ref_outs]
    sum((o.double() * s.to(o.device)).sum() for o, s in zip(outs, seeds)).backward()
    sum((r * s).sum() for r, s in zip(ref_outs, seeds)).backward()
    for name in x:
        if x[name].requires_grad:
            check(f"d{name}", ref[name].grad, x[name].grad, ratio)


# ---- linear recurrences -------------------------------------------------------------------------
# one value width (and on Hopper one padded key width, 128) for all: each (K, V, dtype) is a set of
# Triton kernels fla-core compiles and autotunes anew, minutes of device time each
LINEAR_SHAPES = [
    pytest.param(1, 100, 2, 64, 128, id="B1-T100-H2-K64-V128"),    # T not a multiple of the 64-chunk
    pytest.param(2, 256, 4, 128, 128, id="B2-T256-H4-K128-V128"),  # batch > 1, the presets' K
    pytest.param(2, 1, 2, 128, 128, id="B2-T1-H2-K128-V128"),      # one decoding step
    pytest.param(1, 200, 3, 16, 128, id="B1-T200-H3-K16-V128"),    # narrow keys (tiny presets)
]


def run_linear(kind: str, x: dict[str, torch.Tensor], backend: str):
    K = x["q"].shape[-1]
    return KINDS[kind].op(**x, scale=K**-0.5, output_final_state=True, backend=backend)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("B", "T", "H", "K", "V"), LINEAR_SHAPES)
def test_linear_triton_matches_reference(kind, dtype, B, T, H, K, V):
    """Each registered kind's op (oryx.model.kinds) on its example inputs: q, k, v in `dtype`, gates and
    the initial state in float32, as the model passes them."""
    x = KINDS[kind].example_inputs(B, T, H, K, V, dtype, "cuda")
    ref = reference_copies(x)
    o, ht = run_linear(kind, x, "triton")
    ro, rht = run_linear(kind, ref, "naive")
    check("o", ro, o, TOL[dtype])
    check("final state", rht, ht, TOL[dtype])
    check_gradients([o, ht], [ro, rht], x, ref, TOL[dtype])


# ---- attention at a subset of positions -----------------------------------------------------------
def _mask(kind: str, B: int, T: int) -> torch.Tensor:
    """[B, T] bool on CUDA: scattered (different counts per row), chunked, all, few, none."""
    if kind == "scattered":
        return torch.rand(B, T, device="cuda") < torch.linspace(0.25, 0.4, B, device="cuda")[:, None]
    if kind == "chunked":
        return routing.parse("chunks:128:0.5").mask(torch.zeros(B, T, dtype=torch.long, device="cuda"))
    if kind == "few":
        m = torch.zeros(B, T, dtype=torch.bool, device="cuda")
        m[:, torch.randperm(T, device="cuda")[:10]] = True
        return m
    return torch.full((B, T), kind == "all", dtype=torch.bool, device="cuda")


ATTENTION_CASES = [
    # (B, T, offset, Hk, K, V, mask kind): which path each exercises in cuda.py
    # head sizes 128 throughout: FlexAttention compiles once per (K, V, dtype)
    pytest.param(2, 300, 0, 2, 128, 128, "scattered", id="flex-scattered-B2-T300"),
    pytest.param(1, 200, 100, 2, 128, 128, "scattered", id="flex-prefill-after-100"),
    pytest.param(1, 384, 0, 1, 128, 512, "chunked", id="flex-chunked-V512-split"),
    pytest.param(2, 200, 0, 2, 128, 128, "all", id="sdpa-full-causal"),
    pytest.param(1, 256, 0, 1, 128, 512, "all", id="sdpa-full-V512-split"),
    pytest.param(1, 300, 0, 2, 64, 64, "few", id="dense-10-queries"),
    pytest.param(2, 1, 299, 2, 64, 64, "all", id="dense-decode-step"),
    pytest.param(1, 100, 0, 2, 64, 64, "none", id="no-attention-position"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("B", "T", "offset", "H", "K", "V", "kind"), ATTENTION_CASES)
def test_sparse_attention_triton_matches_reference(dtype, B, T, offset, H, K, V, kind):
    """Queries rotated inside the op (after packing) and outputs written into a `fill`, as the mixer
    calls it; without fill where no position is in attention mode (zeros expected)."""
    S = offset + T
    x = {
        "q": torch.randn(B, T, H, K, device="cuda").to(dtype),
        "k": torch.randn(B, S, H, K, device="cuda").to(dtype),
        "v": torch.randn(B, S, H, V, device="cuda").to(dtype),
    }
    if kind not in ("none", "all"):
        x["fill"] = torch.randn(B, T, H, V, device="cuda").to(dtype)
    x = {n: t.requires_grad_() for n, t in x.items()}
    ref = reference_copies(x)
    mask = _mask(kind, B, T)
    o = sparse_attention(x["q"], x["k"], x["v"], mask, offset, K**-0.5, "triton", 1e4, x.get("fill"))
    ro = sparse_attention(ref["q"], ref["k"], ref["v"], mask.cpu(), offset, K**-0.5, "naive", 1e4, ref.get("fill"))
    check("o", ro, o, TOL[dtype])
    if not bool(mask.any()):
        assert bool((o == 0).all()), "positions in linear mode must get zeros"
        return
    check_gradients([o], [ro], x, ref, TOL[dtype])


# ---- the mixer's fused elementwise ops (fla-core kernels) -------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("B", "T", "C", "with_state", "activation"),
    [
        pytest.param(2, 100, 256, False, "silu", id="B2-T100-silu"),
        pytest.param(1, 37, 192, True, "silu", id="B1-T37-state-silu"),      # chunked prefill
        pytest.param(2, 64, 128, True, None, id="B2-T64-state-none"),
    ],
)
def test_conv_triton_matches_reference(dtype, B, T, C, with_state, activation):
    x = {"x": torch.randn(B, T, C, device="cuda").to(dtype), "w": torch.randn(C, 4, device="cuda").to(dtype),
         "b": torch.randn(C, device="cuda").to(dtype)}
    if with_state:
        x["state"] = torch.randn(B, 3, C, device="cuda").to(dtype)
    x = {n: t.requires_grad_() for n, t in x.items()}
    ref = reference_copies(x)
    y, s = causal_conv1d(x["x"], x["w"], x["b"], x.get("state"), activation, "triton")
    ry, rs = causal_conv1d(ref["x"], ref["w"], ref["b"], ref.get("state"), activation, "naive")
    check("y", ry, y, TOL[dtype])
    check("new state", rs, s, TOL[dtype])
    check_gradients([y], [ry], x, ref, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_row", [False, True], ids=["positions-T", "positions-BT"])
def test_rotary_triton_matches_reference(dtype, per_row):
    B, T, H, D = 2, 300, 3, 128
    x = {"x": torch.randn(B, T, H, D, device="cuda").to(dtype).requires_grad_()}
    positions = torch.randint(0, 60000, (B, T)).sort(1).values if per_row else torch.arange(1000, 1000 + T)
    ref = reference_copies(x)
    y = rotary(x["x"], positions.cuda(), 1e4, "triton")
    ry = rotary(ref["x"], positions, 1e4, "naive")
    check("y", ry, y, TOL[dtype])
    check_gradients([y], [ry], x, ref, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gated_rms_norm_triton_matches_reference(dtype):
    B, T, H, V = 2, 200, 4, 128
    x = {"x": torch.randn(B, T, H * V, device="cuda").to(dtype), "z": torch.randn(B, T, H * V, device="cuda").to(dtype),
         "w": 1 + 0.1 * torch.randn(H * V, device="cuda")}
    x = {n: t.requires_grad_() for n, t in x.items()}
    ref = reference_copies(x)
    y = gated_rms_norm(x["x"], x["z"], x["w"], 1e-6, V, "triton")
    ry = gated_rms_norm(ref["x"], ref["z"], ref["w"], 1e-6, V, "naive")
    check("y", ry, y, TOL[dtype])
    check_gradients([y], [ry], x, ref, TOL[dtype])


# ---- the whole mixer: grouped heads, packed attention, state handed from prefill to decoding -------
def _mixer_pair(family: str, dtype, backend: str = "triton") -> tuple[OryxMixer, OryxMixer]:
    """The same weights twice: float64 CPU with the naive backend, and CUDA `dtype` with `backend`.

    Grouped layout: 2 qk heads of K=128, 4 value heads of V=128 (two per qk head: 256 values per
    attention head, split into two for the kernels)."""
    layout = dict(d_model=256, num_qk_heads=2, head_dim_qk=128, num_heads=4, head_dim_v=128)
    cfg = presets.get(f"{family}-tiny", **layout, backend="naive")
    gpu = OryxMixer(cfg.model_copy(update={"backend": backend}), 0).to("cuda", dtype)
    ref = OryxMixer(cfg, 0).double()
    ref.load_state_dict(gpu.state_dict())  # the reference holds the same (rounded) weights
    return ref, gpu


def _mixer_gradients(mixer: OryxMixer, x: torch.Tensor, mask: torch.Tensor, seed: torch.Tensor) -> dict:
    """{leaf name: gradient on the CPU in float64} of <mixer(x), seed>, x's included."""
    x = x.detach().clone().requires_grad_()
    y = mixer(x, mask)
    (y.double() * seed.to(y.device)).sum().backward()
    return {"x": x.grad, **{n: p.grad for n, p in mixer.named_parameters()}} | {"y": y}


# fla-core's Mamba-2 gate gradients in float32 are known to miss MIXER_TOL (see the test below)
KNOWN_FLOAT32_MISSES = {("oryx-mamba2", "dlin.dt_bias"), ("oryx-mamba2", "dlin.A_log")}


ORYX_FAMILIES = [name for name, family in presets.FAMILIES.items() if family.oryx]


@pytest.mark.parametrize("family", ORYX_FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mixer_triton_matches_reference(family, dtype):
    """Every output and gradient within MIXER_TOL of the float64 reference, or within twice the error
    of the plain PyTorch path run at the kernels' precision on the same inputs (FlashAttention's test
    rule). The second bound is for gradients that are sums over every position with much cancellation
    (the Mamba-2 D and A_log): measured on the H200, bf16 dD was 4e-2 to 1.3e-1 off the reference
    through PyTorch and through the kernels alike (benchmarks/results/gpu-tests-h200.txt, session 3).
    fla-core's float32 kernels multiply in TF32, so their PyTorch yardstick runs with TF32 allowed.

    Known: in float32, fla-core's Mamba-2 gate gradients (dt_bias, A_log) missed their bound on the
    H200 (dt_bias 6.5e-3 against 5e-3, more than 2.6x the TF32 PyTorch path's error; A_log 4e-3 to
    1.7e-2 over three seeds). Every other output and gradient is checked strictly; a miss of those two
    alone ends the test as an expected failure (xfail), with the numbers."""
    ref, gpu = _mixer_pair(family, dtype)
    plain = _mixer_pair(family, dtype, "torch")[1]
    plain.load_state_dict(gpu.state_dict())
    B, T = 2, 200
    x = torch.randn(B, T, 256, device="cuda").to(dtype)
    mask = _mask("scattered", B, T)
    seed = torch.randn(B, T, 256, dtype=torch.float64)
    want = _mixer_gradients(ref, x.cpu().double(), mask.cpu(), seed)
    got = _mixer_gradients(gpu, x, mask, seed)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == torch.float32
    try:
        yardstick = _mixer_gradients(plain, x, mask, seed)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    known = []
    for name in want:
        label = name if name == "y" else f"d{name}"
        bound = max(MIXER_TOL[dtype], 2 * rel_err(want[name], yardstick[name].cpu()))
        if dtype == torch.float32 and (family, label) in KNOWN_FLOAT32_MISSES:
            err = rel_err(want[name], got[name].cpu())
            print(f"    {label:<28} rel err {err:.2e}  (bound {bound:.0e}, a known miss)")
            if err > bound:
                known.append(f"{label} {err:.2e} > {bound:.1e}")
            continue
        check(label, want[name], got[name], bound)
    if known:
        pytest.xfail(f"fla-core's float32 Mamba-2 gate gradients, as known: {'; '.join(known)}")


@pytest.mark.parametrize("family", ORYX_FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mixer_prefill_then_decode_matches_parallel_reference(family, dtype):
    """Prefill 150 positions with a cache (chunk kernels write the final state), then 4 single-position
    steps alternating modes (each reads the state and the KV cache): equal to one parallel reference."""
    ref, gpu = _mixer_pair(family, dtype)
    B, T, P = 2, 154, 150
    x = torch.randn(B, T, 256, device="cuda").to(dtype)
    mask = _mask("scattered", B, T)
    mask[:, P:] = torch.tensor([True, False, True, False], device="cuda")
    with torch.no_grad():
        ry = ref(x.cpu().double(), mask.cpu())
        cache = LayerCache()
        ys = [gpu(x[:, :P], mask[:, :P], cache, 0)]
        ys += [gpu(x[:, t : t + 1], mask[:, t : t + 1], cache, t) for t in range(P, T)]
    check("y (prefill + steps)", ry, torch.cat(ys, 1), MIXER_TOL[dtype])
