"""Named model configs `<family>-<size>`, parameter-matched within each size.

    families: oryx-mamba2, oryx-gdn (the paper's two instances), transformer, mamba2, gdn (single-mixer
              baselines), hybrid-mamba2 (static layer interleave: one attention layer in four)
    sizes:    tiny (CPU tests), small (CPU smoke runs), z128 and z256 (2-layer retrieval models), 125m,
              350m, 1.4b

Every family of a size aims at the same parameter count: the widths of the mixer follow the family's
head layout, and the SwiGLU width is solved by counting parameters (`oryx info` shows the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from oryx.errors import OryxError
from oryx.model.config import OryxConfig


@dataclass(frozen=True)
class Size:
    d_model: int
    n_layers: int
    vocab_size: int
    target_params: int
    head_dim_qk: int      # K of the recurrent layouts
    head_dim_v: int       # V of the Mamba-2 layout
    head_dim_attn: int    # head size of the Transformer layout
    mlp_multiple: int     # SwiGLU width is rounded to a multiple of this


# tiny and small default to the built-in byte tokenizer's vocabulary (256 bytes + bos, eos, pad); the
# trainer always sets vocab_size from the data, which shifts every family of a size alike.
SIZES: dict[str, Size] = {
    "tiny": Size(64, 2, 259, 300_000, 16, 16, 16, 16),
    "small": Size(256, 4, 259, 5_000_000, 64, 32, 64, 32),
    "125m": Size(768, 12, 32_000, 125_000_000, 128, 64, 64, 64),
    "350m": Size(1024, 24, 32_000, 350_000_000, 128, 64, 64, 64),
    "1.4b": Size(2048, 24, 32_000, 1_400_000_000, 128, 64, 128, 128),
    # Zoology-scale retrieval models (2 layers, MQAR's vocabulary of 8192): two widths for the
    # retrieval study (runs/gpu-retrieval), where fixed-state recurrences need width and attention not
    "z128": Size(128, 2, 8192, 1_500_000, 64, 32, 64, 16),
    "z256": Size(256, 2, 8192, 3_600_000, 64, 32, 64, 16),
}


def _layout(family: str, s: Size) -> dict:
    """Head layout of a family (DESIGN.md 1): value heads grouped under fewer query/key heads for the
    recurrent families (Mamba-2: ngroups = d/256 of K=128, V=64, expand 2; GDN: the same qk heads, two
    value heads each, expand 2), plain multi-head attention for the Transformer."""
    d = s.d_model
    groups = max(1, d // 256)
    if family == "transformer":
        heads = d // s.head_dim_attn
        return dict(num_qk_heads=heads, head_dim_qk=s.head_dim_attn, num_heads=heads, head_dim_v=s.head_dim_attn)
    if family.endswith("gdn"):
        return dict(num_qk_heads=groups, head_dim_qk=s.head_dim_qk, num_heads=2 * groups, head_dim_v=d // groups)
    return dict(num_qk_heads=groups, head_dim_qk=s.head_dim_qk, num_heads=2 * d // s.head_dim_v,
                head_dim_v=s.head_dim_v)


def _mixers(family: str, n_layers: int) -> list[list[str]]:
    if family == "hybrid-mamba2":
        # attention in every fourth layer (3, 7, ...); a model of fewer than 4 layers gets its last one
        attention = {i for i in range(n_layers) if i % 4 == 3} or {n_layers - 1}
        return [["attention"] if i in attention else ["mamba2"] for i in range(n_layers)]
    return [{
        "oryx-mamba2": ["attention", "mamba2"],
        "oryx-gdn": ["attention", "gdn"],
        "transformer": ["attention"],
        "mamba2": ["mamba2"],
        "gdn": ["gdn"],
    }[family]]


FAMILIES: tuple[str, ...] = ("oryx-mamba2", "oryx-gdn", "transformer", "mamba2", "gdn", "hybrid-mamba2")


def names() -> list[str]:
    """Every preset name, `<family>-<size>`."""
    return [f"{f}-{s}" for f in FAMILIES for s in SIZES]


def split(name: str) -> tuple[str, str]:
    """'oryx-mamba2-125m' -> ('oryx-mamba2', '125m'); OryxError for an unknown name."""
    family, _, size = name.rpartition("-")
    if family not in FAMILIES or size not in SIZES:
        raise OryxError(f"unknown preset {name!r}; families: {', '.join(FAMILIES)}; sizes: {', '.join(SIZES)}")
    return family, size


def get(name: str, **overrides) -> OryxConfig:
    """The config of preset `name`, with field overrides (validated: an unknown field is an error)."""
    base = _solved(name)
    unknown = sorted(set(overrides) - set(OryxConfig.model_fields))
    if unknown:
        raise OryxError(f"unknown OryxConfig field(s) {', '.join(unknown)} for preset {name!r}")
    return OryxConfig.model_validate({**base.model_dump(), **overrides})


@cache
def _solved(name: str) -> OryxConfig:
    family, size = split(name)
    s = SIZES[size]
    fields = dict(
        vocab_size=s.vocab_size,
        d_model=s.d_model,
        n_layers=s.n_layers,
        mixers=_mixers(family, s.n_layers),
        max_seq_len=65_536,
        default_schedule="all_attention" if family == "transformer" else "all_linear",
        **_layout(family, s),
    )
    without_mlp = count_total(OryxConfig(**fields, mlp_hidden=0))
    per_unit = 3 * s.d_model * s.n_layers                 # a SwiGLU column: gate, up, down
    hidden = round((s.target_params - without_mlp) / per_unit / s.mlp_multiple) * s.mlp_multiple
    if hidden <= 0:
        raise AssertionError(f"preset {name}: the mixers alone exceed the target parameter count")
    return OryxConfig(**fields, mlp_hidden=hidden)


def count_total(config: OryxConfig) -> int:
    """Parameters of a config, counted on the meta device (no memory, no init cost)."""
    from oryx.model.modeling import OryxForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in OryxForCausalLM(config).parameters())
