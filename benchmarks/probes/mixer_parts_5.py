# Ran twice on the H200 (session 4, sections kern mixer): on 31c9410 before its last edits and on 31c9410
# (see benchmarks/results/mixer-parts-h200.md, probe 5). Usage: python3 benchmarks/probes/mixer_parts_5.py SECTION...
"""Probe 5: FlexAttention's kernel options one by one (the mask hints apart, TMA for the forward only,
repeats of the shipped set to see the noise), and the attention part and mixer with the packing that
pads inside itself and scatters through its own gradient."""
import os

import torch

from common import fb, recorder, run_sections
from mixer_parts_4 import _kernel_inputs, cfgs, mask, N, K
from oryx.bench.kernels import time_attention_part, time_mixer
from oryx.ops.attention import flex as flexmod

rec = recorder("probe5")


def kern():
    q, k, v, bm = _kernel_inputs()
    fx = flexmod.compiled_flex_attention()
    shipped = flexmod.kernel_options(q)
    tiles = dict(flexmod.FORWARD_TILES)
    variants = {
        "shipped (tiles + hints)": shipped,
        "tiles + contiguous": {**tiles, "BLOCKS_ARE_CONTIGUOUS": True},
        "tiles + safe rows": {**tiles, "ROWS_GUARANTEED_SAFE": True},
        "shipped + fwd_USE_TMA": {**shipped, "fwd_USE_TMA": True},
        "tiles alone": tiles,
        "shipped again": shipped,
    }
    for name, opts in variants.items():
        rec(f"flex kernel {name}", fb(lambda: fx(q, k, v, block_mask=bm, scale=K**-0.5, kernel_options=opts), [q, k, v]))


def mixer():
    rec("attention part", [round(t, 3) for t in time_attention_part(cfgs["oryx"], N, mask)])
    rec("oryx mixer f=0.1 scattered", [round(t, 3) for t in time_mixer(cfgs["oryx"], N, mask)])


if __name__ == "__main__":
    import sys

    run_sections(globals(), sys.argv[1:])
