# Ran on the H200 (session 4, sections mixer parts kern tune) against 31c9410's parent plus the own query
# projected after packing; its "tiles (as shipped)" meant FORWARD_TILES alone then. Results:
# benchmarks/results/mixer-parts-h200.md. Usage: python3 benchmarks/probes/mixer_parts_4.py SECTION...
# (2> $OUT/stderr.txt keeps max-autotune's log)
"""Probe 4: the query projection after packing (the mixer at the target point); where the attention
part's time goes beyond FlexAttention's kernel (a profile); FlexAttention kernel options (TMA, the
contiguous-blocks and safe-rows hints) and max-autotune's choice of forward and backward tiles."""
import os

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from common import fb, recorder, run_sections
from oryx.bench.kernels import attention_inputs, layer_configs, pattern_mask, time_attention_part, time_mixer
from oryx.ops.attention import flex as flexmod
from oryx.ops.attention import mode_counts, sparse_attention
from oryx.ops.attention.gather import Packing

OUT = os.environ["OUT"]
N, D, K = 32768, 2048, 128
rec = recorder("probe4")
cfgs = layer_configs("oryx-mamba2", D, "hd128")
mask = pattern_mask("scattered", 0.1, N)
counts = mode_counts(mask)[0]


def mixer():
    """The target point with the query projected after packing (this tree), beside its baselines."""
    rec("oryx mixer f=0.1 scattered", [round(t, 3) for t in time_mixer(cfgs["oryx"], N, mask)])
    rec("linear mixer", [round(t, 3) for t in time_mixer(cfgs["linear"], N, torch.zeros_like(mask))])
    rec("attention part", [round(t, 3) for t in time_attention_part(cfgs["oryx"], N, mask)])


def parts():
    """GPU kernels of three forward+backward calls of the attention part, as the benchmark times it."""
    q, k, v = attention_inputs(cfgs["oryx"], N)
    go = torch.randn_like(q)

    def call():
        for t in (q, k, v):
            t.grad = None
        sparse_attention(q, k, v, mask, 0, K**-0.5, "auto", counts=counts).backward(go)

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            call()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=70)
    with open(f"{OUT}/profile-attention-part.txt", "w") as f:
        f.write(table)
    print(table[:6000])


def _kernel_inputs():
    pk = Packing.from_mask(mask, counts[1])
    n = pk.index.shape[1]
    npad = flexmod.bucket(n, 16)
    q_pos = F.pad(pk.index, (0, npad - n), value=N - 1)
    bm = flexmod.position_block_mask(q_pos, N)
    q, k, v = (torch.randn(1, 16, L, K, device="cuda", dtype=torch.bfloat16, requires_grad=True) for L in (npad, N, N))
    return q, k, v, bm


def kern():
    """The FlexAttention kernel alone (block mask prebuilt), one compiled function per option set."""
    q, k, v, bm = _kernel_inputs()
    fx = flexmod.compiled_flex_attention()
    tiles = dict(flexmod.FORWARD_TILES)
    variants = {
        "tiles (as shipped)": tiles,
        "tiles + USE_TMA": {**tiles, "USE_TMA": True},
        "tiles + contiguous + safe rows": {**tiles, "BLOCKS_ARE_CONTIGUOUS": True, "ROWS_GUARANTEED_SAFE": True},
        "tiles + TMA + contiguous + safe": {**tiles, "USE_TMA": True, "BLOCKS_ARE_CONTIGUOUS": True,
                                           "ROWS_GUARANTEED_SAFE": True},
        "tiles + bwd 64/128/128/64 w8 s2": {**tiles, "bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128,
                                            "bwd_BLOCK_N2": 64, "bwd_num_warps": 8, "bwd_num_stages": 2},
        "tiles + bwd 64/128/128/64 w8 s4": {**tiles, "bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128,
                                            "bwd_BLOCK_N2": 64, "bwd_num_warps": 8, "bwd_num_stages": 4},
        "tiles + bwd 32/64/64/32 w4 s3": {**tiles, "bwd_BLOCK_M1": 32, "bwd_BLOCK_N1": 64, "bwd_BLOCK_M2": 64,
                                          "bwd_BLOCK_N2": 32, "bwd_num_warps": 4, "bwd_num_stages": 3},
    }
    for name, opts in variants.items():
        rec(f"flex kernel {name}", fb(lambda: fx(q, k, v, block_mask=bm, scale=K**-0.5, kernel_options=opts), [q, k, v]))


def tune():
    """max-autotune over inductor's FlexAttention configs (its choices and timings go to stderr)."""
    from torch.nn.attention.flex_attention import flex_attention

    q, k, v, bm = _kernel_inputs()
    fx = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")
    rec("flex kernel max-autotune", fb(lambda: fx(q, k, v, block_mask=bm, scale=K**-0.5), [q, k, v]))


if __name__ == "__main__":
    import sys

    run_sections(globals(), sys.argv[1:])
