# Kept verbatim (this header aside; its result, section and timing helpers since moved unchanged to common.py) as it ran on the H200 on 2026-11-29 against the tree of the commit that added it, before FlexAttention moved to static shapes and the mixer to one host read per layer.
# Results: benchmarks/results/mixer-parts-h200.md. Usage: python3 benchmarks/probes/mixer_parts_2.py SECTION...
"""Probe 2: FlexAttention compile policies and kernel options; the mixer after the fused ops."""
import os, sys, time
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

torch._dynamo.config.recompile_limit = 256
torch._dynamo.config.accumulated_recompile_limit = 4096

from common import fb, recorder, run_sections
from oryx.bench.kernels import cuda_ms, layer_configs, pattern_mask
from oryx.model.mixer import OryxMixer
from oryx.ops import rotary, sparse_attention
from oryx.ops.attention.gather import Packing
from oryx.ops.attention import flex as flexmod
from torch.nn.attention.flex_attention import flex_attention

OUT = os.environ["OUT"]
N, D, dev, bf = 32768, 2048, "cuda", torch.bfloat16
rec = recorder("probe2")
cfgs = layer_configs("oryx-mamba2", D, "hd128")
cfg = cfgs["oryx"]
mask = pattern_mask("scattered", 0.1, N)
K = 128

def packed(m):
    pk = Packing.from_mask(m)
    n = pk.index.shape[1]
    pad = (-n) % 128
    q_pos = F.pad(pk.index, (0, pad), value=N - 1)
    mk = lambda: torch.randn(1, 16, n + pad, K, device=dev, dtype=bf, requires_grad=True)
    return q_pos, mk

def flexvariants():
    q_pos, mk = packed(mask)
    kk, vv = (torch.randn(1, 16, N, K, device=dev, dtype=bf, requires_grad=True) for _ in range(2))
    rec("position_block_mask (new) ms", round(cuda_ms(lambda: flexmod.position_block_mask(q_pos, N)), 3))
    bm = flexmod.position_block_mask(q_pos, N)
    qq = mk()
    def run(name, fn, ko=None, q=qq, b=bm):
        t0 = time.time()
        try:
            rec(f"flex {name}", fb(lambda: fn(q, kk, vv, block_mask=b, scale=K**-0.5, kernel_options=ko), [q, kk, vv]))
        except Exception as e:
            rec(f"flex {name}", f"error {type(e).__name__}: {str(e)[:300]}")
        print(f"   ({time.time()-t0:.0f}s)", flush=True)
    run("dynamic=True", torch.compile(flex_attention, dynamic=True))
    st = torch.compile(flex_attention, dynamic=False)
    run("static", st)
    run("static USE_TMA", st, {"USE_TMA": True})
    run("static bwd 64/64/64/64 w4 s3", st, {"bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 64, "bwd_BLOCK_M2": 64, "bwd_BLOCK_N2": 64, "bwd_num_warps": 4, "bwd_num_stages": 3})
    run("static bwd 32/128/128/32 w8 s3", st, {"bwd_BLOCK_M1": 32, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128, "bwd_BLOCK_N2": 32, "bwd_num_warps": 8, "bwd_num_stages": 3})
    run("static fwd 128/64 w8 s3", st, {"fwd_BLOCK_M": 128, "fwd_BLOCK_N": 64, "fwd_num_warps": 8, "fwd_num_stages": 3})
    # automatic dynamic: first shape static, a second packed length makes n dynamic
    au = torch.compile(flex_attention)
    m2 = pattern_mask("scattered", 0.12, N)
    q_pos2, mk2 = packed(m2)
    run("auto, first shape (static)", au)
    run("auto, second shape (n dynamic)", au, q=mk2(), b=flexmod.position_block_mask(q_pos2, N))
    run("auto, first shape again", au)
    mx = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")
    run("static max-autotune", mx)

def rot():
    x = torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True)
    pos = torch.arange(N, device=dev)
    rec("rotary keys naive", fb(lambda: rotary(x, pos, 1e4, "torch"), [x]))
    rec("rotary keys fla", fb(lambda: rotary(x, pos, 1e4, "triton"), [x]))

def attn2():
    q, k, v, fill = (torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True) for _ in range(4))
    rec("sparse_attention f=0.1 plain", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto"), [q, k, v]))
    rec("sparse_attention f=0.1 rope+fill", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto", 1e4, fill), [q, k, v, fill]))

def mixers2():
    for name, c, m in (("oryx f=0.1", cfg, mask), ("linear", cfgs["linear"], torch.zeros_like(mask)),
                       ("transformer", cfgs["transformer"], torch.ones_like(mask))):
        mix = OryxMixer(c, 0).to(dev, bf)
        x = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
        rec(f"mixer {name} fwd/fwdbwd", fb(lambda: mix(x, m), [x, *mix.parameters()]))
        if name.startswith("oryx"):
            g = torch.randn(1, N, D, device=dev, dtype=bf)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
                for _ in range(3):
                    mix(x, m).backward(g)
                torch.cuda.synchronize()
            tab = p.key_averages().table(sort_by="self_device_time_total", row_limit=45, max_name_column_width=60)
            open(f"{OUT}/profile2-oryx.txt", "w").write(tab)

run_sections(globals(), sys.argv[1:])
