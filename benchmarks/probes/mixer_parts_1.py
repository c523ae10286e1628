# Kept verbatim (this header aside; its result, section and timing helpers since moved unchanged to common.py) as it ran on the H200 on 2026-11-29 against the tree of commit d42e472 (imports `rotate` and `GatedRMSNorm` as they were then).
# Results: benchmarks/results/mixer-parts-h200.md. Usage: python3 benchmarks/probes/mixer_parts_1.py SECTION...
"""Probe 1: where does the Oryx mixer's time go at N=32k, D=2048, hd128, f=0.1 (bf16, H200)."""
import os, sys, time
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

from common import fb, recorder, run_sections
from oryx.bench.kernels import cuda_ms, layer_configs, pattern_mask
from oryx.model.mixer import OryxMixer
from oryx.model.layers import GatedRMSNorm, rotate
from oryx.ops.conv.depthwise import causal_conv1d
from oryx.ops.attention.gather import Packing
from oryx.ops.attention import flex as flexmod

OUT = os.environ["OUT"]
N, D, dev, bf = 32768, 2048, "cuda", torch.bfloat16
rec = recorder("probe1")
cfgs = layer_configs("oryx-mamba2", D, "hd128")
cfg = cfgs["oryx"]
mask = pattern_mask("scattered", 0.1, N)

def mixers():
    for name, c, m in (("oryx f=0.1", cfg, mask), ("linear", cfgs["linear"], torch.zeros_like(mask)),
                       ("transformer", cfgs["transformer"], torch.ones_like(mask))):
        mix = OryxMixer(c, 0).to(dev, bf)
        x = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
        rec(f"mixer {name} fwd/fwdbwd", fb(lambda: mix(x, m), [x, *mix.parameters()]))
        g = torch.randn(1, N, D, device=dev, dtype=bf)
        for _ in range(2):
            mix(x, m).backward(g)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            t0 = time.perf_counter()
            for _ in range(3):
                mix(x, m).backward(g)
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / 3 * 1e3
        rec(f"mixer {name} wall ms per fwdbwd under profiler", round(wall, 2))
        tab = p.key_averages().table(sort_by="device_time_total", row_limit=60, max_name_column_width=70)
        open(f"{OUT}/profile-{name.split()[0]}.txt", "w").write(tab)
        print(tab[:6000], flush=True)

def convs():
    x = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
    w = torch.randn(D, 4, device=dev, dtype=bf, requires_grad=True)
    b = torch.zeros(D, device=dev, dtype=bf, requires_grad=True)
    rec("conv eager", fb(lambda: causal_conv1d(x, w, b, None, "silu")[0], [x, w, b]))
    cc = torch.compile(causal_conv1d, dynamic=True)
    rec("conv compiled", fb(lambda: cc(x, w, b, None, "silu")[0], [x, w, b]))
    from fla.modules.causal_conv1d import causal_conv1d as fla_conv
    rec("conv fla", fb(lambda: fla_conv(x, w, b, activation="silu")[0], [x, w, b]))
    ref = causal_conv1d(x.float(), w.float(), b.float(), None, "silu")[0]
    rec("conv fla max abs err vs fp32", float((fla_conv(x, w, b, activation="silu")[0].float() - ref).abs().max()))

def rotary():
    x = torch.randn(1, N, 16, 128, device=dev, dtype=bf, requires_grad=True)
    pos = torch.arange(N, device=dev)
    rec("rotate eager", fb(lambda: rotate(x, pos, 10000.0), [x]))
    rc = torch.compile(rotate, dynamic=True)
    rec("rotate compiled", fb(lambda: rc(x, pos, 10000.0), [x]))

def norms():
    o = torch.randn(1, N, 16, 128, device=dev, dtype=bf, requires_grad=True)
    g = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
    norm = GatedRMSNorm(16, 128, 1e-6).to(dev)
    rec("gated norm eager (silu outside)", fb(lambda: norm(o, F.silu(g)), [o, g, norm.weight]))
    nc = torch.compile(lambda o, g: norm(o, F.silu(g)), dynamic=True)
    rec("gated norm compiled", fb(lambda: nc(o, g), [o, g, norm.weight]))
    from fla.modules.norm.layernorm_gated import rmsnorm_fn
    w = norm.weight
    rec("gated norm fla group", fb(lambda: rmsnorm_fn(o.flatten(-2), w, None, g, 1e-6, 128, True), [o, g, w]))
    lin = torch.nn.Linear(D, D, bias=False).to(dev, bf)
    xx = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
    rec("one DxD projection", fb(lambda: lin(xx), [xx, lin.weight]))
    a, c = torch.randn(1, N, 16, 128, device=dev, dtype=bf, requires_grad=True), torch.randn(1, N, 16, 128, device=dev, dtype=bf, requires_grad=True)
    rec("torch.where mask", fb(lambda: torch.where(mask[:, :, None, None], a, c), [a, c]))

def attention():
    Hk, K = 16, 128
    q, k, v = (torch.randn(1, N, Hk, K, device=dev, dtype=bf, requires_grad=True) for _ in range(3))
    from oryx.ops import sparse_attention
    rec("sparse_attention total f=0.1", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto"), [q, k, v]))
    rec("Packing.from_mask ms", round(cuda_ms(lambda: Packing.from_mask(mask)), 3))
    pk = Packing.from_mask(mask)
    n = pk.index.shape[1]
    rec("n packed", n)
    rec("gather q", fb(lambda: pk.gather(q), [q]))
    qp = pk.gather(q).detach().requires_grad_()
    rec("scatter o", fb(lambda: pk.scatter(qp), [qp]))
    pad = (-n) % 128
    q_pos = F.pad(pk.index, (0, pad), value=N - 1)
    rec("position_block_mask ms", round(cuda_ms(lambda: flexmod.position_block_mask(q_pos, N)), 3))
    bm = flexmod.position_block_mask(q_pos, N)
    qq = F.pad(qp.detach(), (0, 0, 0, 0, 0, pad)).transpose(1, 2).contiguous().requires_grad_()
    kk, vv = k.detach().transpose(1, 2).contiguous().requires_grad_(), v.detach().transpose(1, 2).contiguous().requires_grad_()
    from torch.nn.attention.flex_attention import flex_attention
    variants = {
        "dyn": (torch.compile(flex_attention, dynamic=True), None),
        "static": (torch.compile(flex_attention, dynamic=False), None),
        "static TMA": (torch.compile(flex_attention, dynamic=False), {"USE_TMA": True}),
        "static safe": (torch.compile(flex_attention, dynamic=False), {"ROWS_GUARANTEED_SAFE": True, "BLOCKS_ARE_CONTIGUOUS": True}),
    }
    for name, (fn, ko) in variants.items():
        try:
            rec(f"flex {name} (block mask prebuilt)", fb(lambda: fn(qq, kk, vv, block_mask=bm, scale=K**-0.5, kernel_options=ko), [qq, kk, vv]))
        except Exception as e:
            rec(f"flex {name}", f"error {type(e).__name__}: {str(e)[:200]}")
    # transposed layout the op passes today (non-contiguous [B,H,T,K] views)
    qv, kv_, vv_ = qq.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(), k.transpose(1, 2), v.transpose(1, 2)
    fn = variants["dyn"][0]
    rec("flex dyn, transposed views", fb(lambda: fn(qv, kv_, vv_, block_mask=bm, scale=K**-0.5), [qv, k, v]))
    rec("flex dyn incl. block mask build", fb(lambda: fn(qq, kk, vv, block_mask=flexmod.position_block_mask(q_pos, N), scale=K**-0.5), [qq, kk, vv]))
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        rec("cudnn full causal", fb(lambda: F.scaled_dot_product_attention(kk, kk, vv, is_causal=True), [kk, vv]))
    # dense-block reference: n queries as a contiguous causal block at the end (best case for flex)
    from torch.nn.attention.flex_attention import create_block_mask
    off = N - qq.shape[2]
    bm2 = create_block_mask(lambda b, h, qi, ki: ki <= qi + off, 1, 1, qq.shape[2], N, device=dev)
    rec("flex dyn, contiguous last-n block (no scatter)", fb(lambda: fn(qq, kk, vv, block_mask=bm2, scale=K**-0.5), [qq, kk, vv]))
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        rec("cudnn last-n block (bottom-right causal via mask-free?)", fb(lambda: F.scaled_dot_product_attention(qq, kk[:, :, :qq.shape[2]], vv[:, :, :qq.shape[2]], is_causal=True), [qq, kk, vv]))
    global MAXTUNE
    MAXTUNE = (qq, kk, vv, bm)

def maxtune():
    from torch.nn.attention.flex_attention import flex_attention
    qq, kk, vv, bm = MAXTUNE
    K = 128
    try:
        mat = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")
        t0 = time.time()
        rec("flex max-autotune", fb(lambda: mat(qq, kk, vv, block_mask=bm, scale=K**-0.5), [qq, kk, vv]))
        rec("flex max-autotune tuning s", round(time.time() - t0, 1))
    except Exception as e:
        rec("flex max-autotune", f"error {type(e).__name__}: {str(e)[:200]}")

run_sections(globals(), sys.argv[1:])
