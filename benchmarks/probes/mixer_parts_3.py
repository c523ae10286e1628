# Kept as it ran (its result, section and timing helpers since moved unchanged to common.py) on the H200 on 2026-11-29 (session 3): sections rot, attn, mixers against the tree with the project's
# rotary kernel; section order against that tree plus a `descending` argument of position_block_mask and
# flex_positioned_attention (queries latest first), dropped after this measurement showed no gain.
# Results: benchmarks/results/mixer-parts-h200.md. Usage: python3 benchmarks/probes/mixer_parts_3.py SECTION...
"""Probe 3: the project's rotary kernel against fla-core's; the attention part's pieces; a profile of
the Oryx mixer grouped by source line (where the remaining elementwise work and host time come from)."""
import os, sys
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

from common import fb, recorder, run_sections
from oryx.bench.kernels import cuda_ms, layer_configs, pattern_mask
from oryx.model.mixer import OryxMixer
from oryx.ops import rotary, sparse_attention
from oryx.ops.attention import mode_counts
from oryx.ops.attention.gather import Packing
from oryx.ops.attention import flex as flexmod

OUT = os.environ["OUT"]
N, D, dev, bf = 32768, 2048, "cuda", torch.bfloat16
rec = recorder("probe3")
cfgs = layer_configs("oryx-mamba2", D, "hd128")
mask = pattern_mask("scattered", 0.1, N)
counts = mode_counts(mask)[0]
K = 128

def rot():
    from fla.modules.rotary import rotary_embedding
    from oryx.ops.rotary.naive import rotary_tables
    x = torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True)
    pos = torch.arange(N, device=dev)
    def fla_rot(x, p):
        B, T, H, Dh = x.shape
        c, s = rotary_tables(p.expand(B, T).reshape(-1), Dh, 1e4, torch.float32)
        return rotary_embedding(x.reshape(1, B * T, H, Dh), c.to(x.dtype), s.to(x.dtype)).view(B, T, H, Dh)
    rec("rotary keys [1,32k,16,128] own kernel", fb(lambda: rotary(x, pos, 1e4, "triton"), [x]))
    rec("rotary keys fla-core", fb(lambda: fla_rot(x, pos), [x]))
    rec("rotary keys PyTorch", fb(lambda: rotary(x, pos, 1e4, "torch"), [x]))
    y1, y2 = rotary(x, pos, 1e4, "triton"), fla_rot(x, pos)
    rec("own vs fla max abs diff", float((y1.float() - y2.float()).abs().max()))
    pk = Packing.from_mask(mask, counts[1])
    qp = torch.randn(1, pk.index.shape[1], 16, K, device=dev, dtype=bf, requires_grad=True)
    rec("rotary packed queries own", fb(lambda: rotary(qp, pk.index, 1e4, "triton"), [qp]))
    rec("rotary packed queries fla", fb(lambda: fla_rot(qp, pk.index), [qp]))
    rec("rotary tables alone", round(cuda_ms(lambda: rotary_tables(pos, K, 1e4, torch.float32)), 3))

def attn():
    q, k, v, fill = (torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True) for _ in range(4))
    rec("sparse_attention plain, counts read", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto"), [q, k, v]))
    rec("sparse_attention plain, counts given", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto", counts=counts), [q, k, v]))
    rec("sparse_attention rope+fill, counts given", fb(lambda: sparse_attention(q, k, v, mask, 0, K**-0.5, "auto", 1e4, fill, counts), [q, k, v, fill]))
    rec("mode_counts", round(cuda_ms(lambda: mode_counts(mask)), 3))
    rec("Packing.from_mask", round(cuda_ms(lambda: Packing.from_mask(mask, counts[1])), 3))
    pk = Packing.from_mask(mask, counts[1])
    n = pk.index.shape[1]; npad = flexmod.bucket(n, 16)
    q_pos = F.pad(pk.index, (0, npad - n), value=N - 1)
    rec("position_block_mask", round(cuda_ms(lambda: flexmod.position_block_mask(q_pos, N)), 3))
    qq = torch.randn(1, npad, 16, K, device=dev, dtype=bf, requires_grad=True)
    bm = flexmod.position_block_mask(q_pos, N)
    fx = flexmod.compiled_flex_attention()
    rec("flex kernel alone, block mask prebuilt", fb(lambda: fx(qq.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=bm, scale=K**-0.5), [qq, k, v]))
    rec("flex_positioned_attention (mask built)", fb(lambda: flexmod.flex_positioned_attention(qq[:, :n], k, v, q_pos[:, :n], K**-0.5), [qq, k, v]))
    qn = torch.randn(1, n, 16, K, device=dev, dtype=bf, requires_grad=True)
    rec("gather q", fb(lambda: pk.gather(q), [q]))
    rec("scatter o into fill", fb(lambda: pk.scatter(qn, fill), [qn, fill]))

def mixers():
    for name, c, m in (("oryx f=0.1", cfgs["oryx"], mask), ("linear", cfgs["linear"], torch.zeros_like(mask)),
                       ("transformer", cfgs["transformer"], torch.ones_like(mask))):
        mix = OryxMixer(c, 0).to(dev, bf)
        x = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
        cn = mode_counts(m)[0]
        rec(f"mixer {name} fwd/fwdbwd", fb(lambda: mix(x, m), [x, *mix.parameters()]))
        rec(f"mixer {name} fwd/fwdbwd, counts given", fb(lambda: mix(x, m, counts=cn), [x, *mix.parameters()]))
        g = torch.randn(1, N, D, device=dev, dtype=bf)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=True) as p:
            for _ in range(3):
                mix(x, m, counts=cn).backward(g)
            torch.cuda.synchronize()
        tag = name.split()[0]
        ka = p.key_averages()
        open(f"{OUT}/profile3-{tag}.txt", "w").write(ka.table(sort_by="self_device_time_total", row_limit=50, max_name_column_width=70))
        if tag == "oryx":
            ks = p.key_averages(group_by_stack_n=6)
            open(f"{OUT}/profile3-{tag}-stacks.txt", "w").write(ks.table(sort_by="self_device_time_total", row_limit=60, max_name_column_width=60, max_src_column_width=120))

def order():
    """FlexAttention with the packed queries ascending (as before) or latest first; forward tiles."""
    k, v = (torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True) for _ in range(2))
    fx = flexmod.compiled_flex_attention()
    for f_ in (0.05, 0.1, 0.25):
        m = pattern_mask("scattered", f_, N)
        pk = Packing.from_mask(m, mode_counts(m)[0][1])
        n = pk.index.shape[1]; npad = flexmod.bucket(n, 16)
        q_pos = F.pad(pk.index, (0, npad - n), value=N - 1)
        qq = torch.randn(1, npad, 16, K, device=dev, dtype=bf, requires_grad=True)
        for desc in (False, True):
            qp = q_pos.flip(1) if desc else q_pos
            bm = flexmod.position_block_mask(qp, N, desc)
            for name, ko in (("default", None), ("fwd M64 N64 w4", {"fwd_BLOCK_M": 64, "fwd_BLOCK_N": 64, "fwd_num_warps": 4, "fwd_num_stages": 3}),
                             ("fwd M128 N128 w8 s2", {"fwd_BLOCK_M": 128, "fwd_BLOCK_N": 128, "fwd_num_warps": 8, "fwd_num_stages": 2})):
                if f_ != 0.1 and name != "default":
                    continue
                try:
                    rec(f"flex f={f_} {'desc' if desc else 'asc'} {name}", fb(lambda: fx(qq.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=bm, scale=K**-0.5, kernel_options=ko), [qq, k, v]))
                except Exception as e:
                    rec(f"flex f={f_} {'desc' if desc else 'asc'} {name}", f"error {type(e).__name__}: {str(e)[:200]}")
    full = lambda: F.scaled_dot_product_attention(k.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    rec("full causal SDPA (default backend)", fb(full, [k, v]))
    for desc in (False, True):
        flexmod.flex_positioned_attention.__defaults__ = (desc,)
        q, kk, vv, fill = (torch.randn(1, N, 16, K, device=dev, dtype=bf, requires_grad=True) for _ in range(4))
        rec(f"sparse_attention f=0.1 {'desc' if desc else 'asc'}, counts given", fb(lambda: sparse_attention(q, kk, vv, mask, 0, K**-0.5, "auto", counts=counts), [q, kk, vv]))
        mix = OryxMixer(cfgs["oryx"], 0).to(dev, bf)
        x = torch.randn(1, N, D, device=dev, dtype=bf, requires_grad=True)
        rec(f"mixer oryx f=0.1 {'desc' if desc else 'asc'}, counts given", fb(lambda: mix(x, mask, counts=counts), [x, *mix.parameters()]))
    flexmod.flex_positioned_attention.__defaults__ = (flexmod.DESCENDING,)

run_sections(globals(), sys.argv[1:])
