"""Named model configs `<family>-<size>`, parameter-matched within each size.

    families: for each linear kind K of `oryx.model.kinds.KINDS` (mamba2, gdn, ...): oryx-K (every layer
              owns attention and K: the paper's model) and K (the pure recurrent baseline); transformer;
              hybrid-mamba2 (static layer interleave: one attention layer in four). `FAMILIES` holds them.
    sizes:    tiny (CPU tests), small (CPU smoke runs), z128 and z256 (2-layer retrieval models), 125m,
              350m, 1.4b

Every family of a size aims at the same parameter count: the widths of the mixer follow the head layout
of the family's linear kind (`LinearKind.layout`; the Transformer has its own), and the SwiGLU width is
solved by counting parameters (`oryx info` shows the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from oryx.errors import OryxError
from oryx.model.config import OryxConfig
from oryx.model.kinds import ATTENTION, KINDS


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
    # Zoology-scale retrieval models (2 layers, an MQAR vocabulary of 8192 by default; the trainer sets it
    # from the data): two widths for the retrieval study (runs/gpu-retrieval), where fixed-state
    # recurrences need width and attention does not
    "z128": Size(128, 2, 8192, 1_500_000, 64, 32, 64, 16),
    "z256": Size(256, 2, 8192, 3_600_000, 64, 32, 64, 16),
}


@dataclass(frozen=True)
class Family:
    """A preset family: the mixers its layers own, from its linear kind (None: the Transformer)."""

    name: str
    kind: str | None
    oryx: bool = False          # every layer owns attention and the kind (a schedule picks each position's mode)
    attention_every: int = 0    # a static hybrid: attention alone in every n-th layer, the kind elsewhere

    @property
    def baseline(self) -> bool:
        """A single-mixer family: no layer owns two mixers."""
        return not self.oryx

    def mixers(self, n_layers: int) -> list[list[str]]:
        """The `mixers` field of its configs: one list for all layers, or one per layer (hybrids)."""
        if self.kind is None:
            return [[ATTENTION]]
        if self.attention_every:
            # attention in every n-th layer (n-1, 2n-1, ...); a model of fewer layers gets its last one
            n = self.attention_every
            attention = {i for i in range(n_layers) if i % n == n - 1} or {n_layers - 1}
            return [[ATTENTION] if i in attention else [self.kind] for i in range(n_layers)]
        return [[ATTENTION, self.kind] if self.oryx else [self.kind]]

    def layout(self, s: Size) -> dict[str, int]:
        """Head layout at size `s`: the kind's (`LinearKind.layout`: value heads grouped under fewer
        query/key heads), or plain multi-head attention for the Transformer."""
        if self.kind is None:
            heads = s.d_model // s.head_dim_attn
            return dict(num_qk_heads=heads, head_dim_qk=s.head_dim_attn, num_heads=heads, head_dim_v=s.head_dim_attn)
        return KINDS[self.kind].layout(s.d_model, s.head_dim_qk, s.head_dim_v)


# Oryx first, then the baselines; one entry per kind in each group, derived from the registry.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    *(Family(f"oryx-{kind}", kind, oryx=True) for kind in KINDS),
    Family("transformer", None),
    *(Family(kind, kind) for kind in KINDS),
    Family("hybrid-mamba2", "mamba2", attention_every=4),
)}


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
    f, s = FAMILIES[family], SIZES[size]
    fields = dict(
        vocab_size=s.vocab_size,
        d_model=s.d_model,
        n_layers=s.n_layers,
        mixers=f.mixers(s.n_layers),
        max_seq_len=65_536,
        default_schedule="all_attention" if f.kind is None else "all_linear",
        **f.layout(s),
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
