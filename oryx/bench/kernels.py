"""GPU benchmark behind `oryx bench kernels`: does the Oryx mixer cost `linear mixer + fraction × attention`?

One layer's mixer (projections, convs, linear path, attention path, gate, output) is timed forward and
forward+backward (CUDA events, warmed up, median of many calls) at each sequence length, width, head
layout, attention fraction and pattern, beside the same layer run as a Transformer mixer (every
position in attention: full causal SDPA) and as a pure linear mixer. The attention part alone
(packed queries) is timed against the full causal attention kernel, each SDPA backend tried.

    ideal(f)          = pure linear mixer + f × full causal attention kernel     (forward+backward)
    ratio_to_ideal    = Oryx mixer / ideal(f)
    speedup_vs_full_attention_fwdbwd = Transformer mixer / Oryx mixer
    attention_part_speedup          = full causal attention kernel / attention part at f

Also: per-token decoding latency against context length in each mode, and the peak memory of
forward+backward at the longest length.

The whole default grid takes longer than one sitting on a borrowed GPU may last, so a run can resume
(`resume=True`, `--resume`): the rows already in the result file are kept and only the missing ones are
measured. Every row records when, by which command and with which versions it was measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from oryx import presets, routing
from oryx.errors import OryxError
from oryx.model.cache import LayerCache
from oryx.model.config import OryxConfig
from oryx.model.kinds import KINDS
from oryx.model.mixer import OryxMixer
from oryx.ops import sparse_attention
from oryx.ops.attention import mode_counts
from oryx.ops.attention.flex import merge_values, split_values
from oryx.ops.attention.sdpa import causal_attention

FRACTIONS = (0.0, 0.05, 0.1, 0.25, 1.0)
# pattern -> schedule spec at fraction f: scattered = each position drawn alone (chunks of 1),
# chunked = 128-position chunks spread evenly
PATTERNS = {"scattered": "random:{f}:1:0", "chunked": "chunks:128:{f}"}
LAYOUTS = ("preset", "hd64", "hd128")
SIZE_OF_WIDTH = {768: "125m", 1024: "350m", 2048: "1.4b"}
TARGET = {"N": 32768, "fraction": 0.1, "pattern": "scattered", "layout": "hd128"}
DTYPE = torch.bfloat16
DEVICE = "cuda"


# ---- timing ----------------------------------------------------------------------------------------
def cuda_ms(fn: Callable[[], object], budget_ms: float = 400.0, min_reps: int = 5, max_reps: int = 50) -> float:
    """Median milliseconds of `fn` over reps timed with CUDA events, after two warm-up calls
    (compilation, autotuning, allocator growth); the number of reps fits `budget_ms`."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(max_reps)]
    events[0][0].record()
    fn()
    events[0][1].record()
    torch.cuda.synchronize()
    first = events[0][0].elapsed_time(events[0][1])
    reps = int(min(max_reps, max(min_reps, budget_ms / max(first, 1e-3))))
    for start, end in events[:reps]:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events[:reps])


def fwd_and_fwdbwd(forward: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> tuple[float, float]:
    """(forward ms without autograd, forward+backward ms) of `forward`, gradients reset between calls."""
    def fwd():
        with torch.no_grad():
            forward()

    def fwdbwd():
        for t in leaves:
            t.grad = None
        forward().backward(grad_out)

    with torch.no_grad():
        probe = forward()
    grad_out = torch.randn_like(probe)
    return cuda_ms(fwd), cuda_ms(fwdbwd)


# ---- what is timed ---------------------------------------------------------------------------------
def layer_configs(family: str, width: int, layout: str) -> dict[str, OryxConfig]:
    """The Oryx layer and the same layer as a Transformer mixer and as a pure linear mixer.

    layout: 'preset' (the head layout of the family's preset at this width) or 'hd64' / 'hd128'
    (plain multi-head: as many qk heads as value heads, both of that size)."""
    name = f"{family}-{SIZE_OF_WIDTH[width]}"
    heads = {}
    if layout != "preset":
        hd = int(layout[2:])
        heads = dict(num_qk_heads=width // hd, head_dim_qk=hd, num_heads=width // hd, head_dim_v=hd)
    oryx = presets.get(name, **heads, backend="auto")
    linear = oryx.linear_kind(0)
    return {
        "oryx": oryx,
        "transformer": presets.get(name, **heads, mixers=["attention"], backend="auto"),
        "linear": presets.get(name, **heads, mixers=[linear], backend="auto"),
    }


def row_pattern(pattern: str, fraction: float) -> str:
    """The pattern a row records: '-' at fractions 0 and 1, where every pattern is the same mask."""
    return pattern if 0 < fraction < 1 else "-"


def pattern_mask(pattern: str, fraction: float, N: int) -> torch.Tensor:
    """[1, N] bool on CUDA from the routing schedules."""
    ids = torch.zeros(1, N, dtype=torch.long, device=DEVICE)
    return routing.parse(PATTERNS[pattern].format(f=fraction)).mask(ids)


def time_mixer(cfg: OryxConfig, N: int, mask: torch.Tensor) -> tuple[float, float]:
    """One layer's mixer as the model runs it: the mode counts are read to the host once per model
    forward for every layer together (`OryxModel`), so they are read here before the timing, not in it
    (read in the layer, the synchronisation stalls its launches: 21.9 against 19.0 ms forward+backward
    at the target point on the H200, benchmarks/results/mixer-parts-h200.md)."""
    mixer = OryxMixer(cfg, 0).to(DEVICE, DTYPE)
    x = torch.randn(1, N, cfg.d_model, device=DEVICE, dtype=DTYPE, requires_grad=True)
    counts = mode_counts(mask)[0]
    return fwd_and_fwdbwd(lambda: mixer(x, mask, counts=counts), [x, *mixer.parameters()])


def attention_inputs(cfg: OryxConfig, N: int) -> list[torch.Tensor]:
    """q, k [1, N, Hk, K], v [1, N, Hk, G*V]: the attention path's tensors for one layer."""
    Hk, K = cfg.num_qk_heads, cfg.head_dim_qk
    W = cfg.num_heads * cfg.head_dim_v // Hk
    shapes = [(1, N, Hk, K), (1, N, Hk, K), (1, N, Hk, W)]
    return [torch.randn(s, device=DEVICE, dtype=DTYPE, requires_grad=True) for s in shapes]


def time_attention_part(cfg: OryxConfig, N: int, mask: torch.Tensor) -> tuple[float, float]:
    """The attention-mode part alone: packed queries against all keys (what the mixer calls)."""
    q, k, v = attention_inputs(cfg, N)
    scale = cfg.head_dim_qk**-0.5
    counts = mode_counts(mask)[0]  # read once per model forward, as in `time_mixer`
    return fwd_and_fwdbwd(lambda: sparse_attention(q, k, v, mask, 0, scale, "auto", counts=counts), [q, k, v])


def time_full_attention(cfg: OryxConfig, N: int) -> dict[str, tuple[float, float]]:
    """Full causal attention kernel under each fused SDPA backend that accepts the shapes
    (value heads wider than 128 split as the CUDA path splits them)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = attention_inputs(cfg, N)
    scale = cfg.head_dim_qk**-0.5

    def attend():
        qs, ks, vs, c = split_values(q, k, v)
        return merge_values(causal_attention(qs, ks, vs, scale), c)

    out = {}
    fused = (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION)
    for backend in (*fused, SDPBackend.MATH):
        if backend == SDPBackend.MATH and out:
            break  # the unfused fallback only where no fused kernel takes the shapes
        try:
            with sdpa_kernel([backend]):
                out[backend.name.lower()] = fwd_and_fwdbwd(attend, [q, k, v])
        except RuntimeError:
            continue  # this backend rejects the shapes or dtype
    return out


def time_linear_path(cfg: OryxConfig, N: int) -> tuple[float, float]:
    """The layer's linear recurrence alone (its kind's op, oryx.model.kinds) through the auto backend,
    on the op's example inputs with q and k expanded to H heads and no initial state."""
    kind = KINDS[cfg.linear_kind(0)]
    x = kind.example_inputs(1, N, cfg.num_heads, cfg.head_dim_qk, cfg.head_dim_v, DTYPE, DEVICE)
    del x["initial_state"]
    leaves = [t for t in x.values() if t.requires_grad]
    return fwd_and_fwdbwd(lambda: kind.op(**x, scale=cfg.head_dim_qk**-0.5, backend="auto")[0], leaves)


def peak_fwdbwd_bytes(cfg: OryxConfig, N: int, mask: torch.Tensor) -> int:
    """Peak memory above what was allocated before one forward+backward of the mixer."""
    mixer = OryxMixer(cfg, 0).to(DEVICE, DTYPE)
    x = torch.randn(1, N, cfg.d_model, device=DEVICE, dtype=DTYPE, requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    mixer(x, mask).sum().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def decode_latency_ms(cfg: OryxConfig, context: int, attention: bool, steps: int = 30) -> float:
    """Median per-token latency of single-position steps after a prefill of `context` positions."""
    mixer = OryxMixer(cfg, 0).to(DEVICE, DTYPE)
    cache = LayerCache()
    with torch.no_grad():
        x = torch.randn(1, context, cfg.d_model, device=DEVICE, dtype=DTYPE)
        mixer(x, torch.zeros(1, context, dtype=torch.bool, device=DEVICE), cache, 0)
        mask = torch.full((1, 1), attention, dtype=torch.bool, device=DEVICE)
        x1 = torch.randn(1, 1, cfg.d_model, device=DEVICE, dtype=DTYPE)
        return cuda_ms(lambda: mixer(x1, mask, cache, cache.length), budget_ms=0, min_reps=steps)


# ---- the run ---------------------------------------------------------------------------------------
def run_point(family: str, N: int, width: int, layout: str, fractions, patterns) -> list[dict]:
    """All rows of one (N, width, layout): the Oryx mixer at each fraction and pattern with its
    baselines."""
    cfgs = layer_configs(family, width, layout)
    oryx = cfgs["oryx"]
    all_false = torch.zeros(1, N, dtype=torch.bool, device=DEVICE)
    tr_fwd, tr_fb = time_mixer(cfgs["transformer"], N, ~all_false)
    lin_fwd, lin_fb = time_mixer(cfgs["linear"], N, all_false)
    full = time_full_attention(oryx, N)
    best = min(full, key=lambda b: full[b][1])
    fa_fwd, fa_fb = full[best]
    _, path_fb = time_linear_path(oryx, N)
    base = {
        "family": family, "layout": layout, "N": N, "D": width, "Hk": oryx.num_qk_heads, "K": oryx.head_dim_qk,
        "H": oryx.num_heads, "V": oryx.head_dim_v,
        "transformer_fwd_ms": tr_fwd, "transformer_fwdbwd_ms": tr_fb,
        "linear_fwd_ms": lin_fwd, "linear_fwdbwd_ms": lin_fb,
        "full_attention_backend": best, "full_attention_fwd_ms": fa_fwd, "full_attention_fwdbwd_ms": fa_fb,
        "full_attention_backends": {b: {"fwd_ms": f, "fwdbwd_ms": fb} for b, (f, fb) in full.items()},
        "linear_path_fwdbwd_ms": path_fb,
    }
    rows = []
    for f in fractions:
        for pattern in (patterns if 0 < f < 1 else patterns[:1]):  # f = 0 and 1 are one pattern
            mask = pattern_mask(pattern, f, N)
            fwd, fb = time_mixer(oryx, N, mask)
            part_fwd, part_fb = time_attention_part(oryx, N, mask) if f > 0 else (0.0, 0.0)
            ideal = lin_fb + f * fa_fb
            rows.append({
                **base, "fraction": f, "pattern": row_pattern(pattern, f),
                "measured_fraction": float(mask.float().mean()),
                "fwd_ms": fwd, "fwdbwd_ms": fb,
                "attention_part_fwd_ms": part_fwd, "attention_part_fwdbwd_ms": part_fb,
                "ideal_fwdbwd_ms": ideal, "ratio_to_ideal": fb / ideal,
                "speedup_vs_full_attention_fwdbwd": tr_fb / fb,
                "attention_part_speedup": fa_fb / part_fb if part_fb else None,
            })
    return rows


def decode_rows(family: str, width: int, layout: str, contexts: list[int]) -> list[dict]:
    cfg = layer_configs(family, width, layout)["oryx"]
    return [
        {"family": family, "D": width, "layout": layout, "context": L, "mode": "attention" if att else "linear",
         "per_token_ms": decode_latency_ms(cfg, L, att)}
        for L in contexts for att in (False, True)
    ]


def memory_rows(family: str, N: int, width: int, layout: str) -> list[dict]:
    cfgs = layer_configs(family, width, layout)
    cases = {
        "oryx 10% scattered": (cfgs["oryx"], pattern_mask("scattered", 0.1, N)),
        "transformer": (cfgs["transformer"], torch.ones(1, N, dtype=torch.bool, device=DEVICE)),
        "linear": (cfgs["linear"], torch.zeros(1, N, dtype=torch.bool, device=DEVICE)),
    }
    return [
        {"family": family, "N": N, "D": width, "layout": layout, "mixer": name,
         "peak_fwdbwd_MiB": peak_fwdbwd_bytes(cfg, N, mask) / 2**20}
        for name, (cfg, mask) in cases.items()
    ]


def targets(rows: list[dict], decode: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met (per family and width)."""
    out = []
    for r in rows:
        at = f"{r['family']} D={r['D']}"
        if all(r[k] == v for k, v in TARGET.items()):
            out += [
                {"target": f"{at}: fwd+bwd within 1.25x of ideal", "value": r["ratio_to_ideal"],
                 "met": r["ratio_to_ideal"] <= 1.25},
                {"target": f"{at}: >= 2.5x faster than the Transformer mixer",
                 "value": r["speedup_vs_full_attention_fwdbwd"], "met": r["speedup_vs_full_attention_fwdbwd"] >= 2.5},
                {"target": f"{at}: attention part >= 6x faster than full causal attention",
                 "value": r["attention_part_speedup"], "met": r["attention_part_speedup"] >= 6},
            ]
        if r["fraction"] == 1.0 and r["N"] == TARGET["N"] and r["layout"] == TARGET["layout"]:
            bound = r["transformer_fwdbwd_ms"] + r["linear_path_fwdbwd_ms"]
            out.append({"target": f"{at}: fraction 1.0 within 1.15x of Transformer + linear path",
                        "value": r["fwdbwd_ms"] / bound, "met": r["fwdbwd_ms"] / bound <= 1.15})
    for key in sorted({(d["family"], d["D"], d["layout"]) for d in decode}):
        linear = sorted((d for d in decode if (d["family"], d["D"], d["layout"]) == key and d["mode"] == "linear"),
                        key=lambda d: d["context"])
        if len(linear) >= 2:
            growth = linear[-1]["per_token_ms"] / linear[0]["per_token_ms"]
            out.append({"target": f"{key[0]} D={key[1]}: linear decoding flat from {linear[0]['context']} to "
                                  f"{linear[-1]['context']} (within 1.2x)", "value": growth, "met": growth <= 1.2})
    return out


# what each row records of the run that measured it (the file's header holds the latest run's)
PROVENANCE = ("date", "command", "torch", "triton", "fla_core", "gpu", "cuda")
ROW_KEYS = {"rows": ("family", "N", "D", "layout", "fraction", "pattern"),
            "decode": ("family", "D", "layout", "context", "mode"), "peak_memory": ("family", "N", "D", "layout")}


def load_previous(path, resume: bool) -> tuple[list[dict], dict]:
    """Rows and extras of an earlier run in `path` (empty when not resuming or nothing is there); rows
    without provenance get the file header's."""
    import json

    empty: dict = {"decode": [], "peak_memory": [], "targets": []}
    if not resume or not path.exists():
        return [], empty
    try:
        data = json.loads(path.read_text())
        rows, extra = list(data["rows"]), {k: list(data.get(k, [])) for k in empty}
        for part, keys in ROW_KEYS.items():
            for r in rows if part == "rows" else extra[part]:
                if missing := [k for k in keys if k not in r]:
                    raise KeyError(f"a {part} entry lacks {missing}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise OryxError(f"{path} is not a result file of `oryx bench kernels` ({e}); run without --resume") from None
    header = {k: data.get(k) for k in PROVENANCE}
    for r in [*rows, *extra["decode"], *extra["peak_memory"]]:
        r.setdefault("measured", header)
    return rows, extra


def run_and_report(
    family: str, lengths: list[int], widths: list[int], layouts: list[str], fractions: list[float],
    patterns: list[str], contexts: list[int], out_dir, name: str, resume: bool = False,
) -> None:
    """Run every point (with resume=True: every point with a requested row missing from
    <out_dir>/<name>.json), write the file (rows, decode, memory, targets, environment) after each
    (N, width, layout), print the tables."""
    from pathlib import Path

    from rich.console import Console

    from oryx.bench.record import environment, write_results

    console = Console()
    rows, extra = load_previous(Path(out_dir) / f"{name}.json", resume)
    env = environment()
    measured = {k: env.get(k) for k in PROVENANCE}
    have = {tuple(r[k] for k in ROW_KEYS["rows"]) for r in rows}
    # longest first: the targets' point is measured before anything else
    for N in sorted(lengths, reverse=True):
        for D in sorted(widths, reverse=True):
            for layout in layouts:
                point = (family, N, D, layout)
                wanted = {(*point, f, row_pattern(p, f)) for f in fractions for p in patterns}
                if wanted <= have:
                    console.print(f"kept N={N} D={D} {layout} (in {name}.json already)")
                    continue
                new = [{**r, "measured": measured} for r in run_point(family, N, D, layout, fractions, patterns)]
                replaced = {tuple(r[k] for k in ROW_KEYS["rows"]) for r in new}
                rows = [r for r in rows if tuple(r[k] for k in ROW_KEYS["rows"]) not in replaced] + new
                have |= replaced
                console.print(f"done N={N} D={D} {layout}")
                extra["targets"] = targets(rows, extra["decode"])
                write_results(name, rows, extra, out_dir)   # partial results survive an interruption
    N_max, D_max = max(lengths), max(widths)
    target_layout = TARGET["layout"] if TARGET["layout"] in layouts else layouts[0]
    if not any((m["family"], m["N"], m["D"], m["layout"]) == (family, N_max, D_max, target_layout)
               for m in extra["peak_memory"]):
        extra["peak_memory"] += [{**m, "measured": measured} for m in memory_rows(family, N_max, D_max, target_layout)]
    done = {d["context"] for d in extra["decode"] if (d["family"], d["D"], d["layout"]) == (family, D_max, target_layout)}
    if missing := [c for c in contexts if c not in done]:
        extra["decode"] += [{**d, "measured": measured} for d in decode_rows(family, D_max, target_layout, missing)]
    extra["targets"] = targets(rows, extra["decode"])
    path = write_results(name, rows, extra, out_dir)
    print_tables(console, rows, extra)
    console.print(f"wrote {path}")


def print_tables(console, rows: list[dict], extra: dict) -> None:
    from rich.table import Table

    t = Table(title="Oryx mixer, forward+backward (ms); speedups vs Transformer mixer and of the attention part")
    for col in ("N", "D", "layout", "f", "pattern", "oryx fwd", "oryx f+b", "transf. f+b", "linear f+b",
                "ideal f+b", "/ideal", "x transf.", "attn part x"):
        t.add_column(col, justify="right")
    for r in rows:
        part = r["attention_part_speedup"]
        t.add_row(str(r["N"]), str(r["D"]), r["layout"], f"{r['fraction']:g}", r["pattern"], f"{r['fwd_ms']:.2f}",
                  f"{r['fwdbwd_ms']:.2f}", f"{r['transformer_fwdbwd_ms']:.2f}", f"{r['linear_fwdbwd_ms']:.2f}",
                  f"{r['ideal_fwdbwd_ms']:.2f}", f"{r['ratio_to_ideal']:.2f}",
                  f"{r['speedup_vs_full_attention_fwdbwd']:.2f}", "-" if part is None else f"{part:.2f}")
    console.print(t)
    if extra["decode"]:
        d = Table(title="decoding, per-token latency of one mixer step (ms)")
        for col in ("D", "layout", "context", "mode", "ms"):
            d.add_column(col, justify="right")
        for r in extra["decode"]:
            d.add_row(str(r["D"]), r["layout"], str(r["context"]), r["mode"], f"{r['per_token_ms']:.3f}")
        console.print(d)
    m = Table(title="peak memory of forward+backward (MiB above inputs and weights)")
    for col in ("N", "D", "layout", "mixer", "MiB"):
        m.add_column(col, justify="right")
    for r in extra["peak_memory"]:
        m.add_row(str(r["N"]), str(r["D"]), r["layout"], r["mixer"], f"{r['peak_fwdbwd_MiB']:.0f}")
    console.print(m)
    g = Table(title="targets (issue 5)")
    for col in ("target", "value", "met"):
        g.add_column(col)
    for r in extra["targets"]:
        g.add_row(r["target"], f"{r['value']:.2f}", "yes" if r["met"] else "NO")
    console.print(g)
