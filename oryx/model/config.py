"""`OryxConfig`: the typed description of a model. Unknown keys and bad values are errors naming the key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oryx.model.kinds import ATTENTION, KINDS, MIXERS
from oryx.ops.backend import Backend
from oryx.routing.router import RouterConfig

Mixer = Literal[MIXERS]  # "attention" or a registered linear kind (oryx.model.kinds)


class OryxConfig(BaseModel):
    """One config for Oryx and every baseline: the layers' mixer lists say which is which.

    `mixers=["attention", "mamba2"]` is Oryx-Mamba2 (every layer owns both mixers), `["attention"]` the
    Transformer++ baseline, `["mamba2"]` / `["gdn"]` the pure recurrent baselines, and a list of lists
    (one per layer) a static layer-interleaved hybrid. The linear mixers are the kinds registered in
    `oryx.model.kinds.KINDS`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    vocab_size: int = Field(256, ge=1, description="token ids are 0..vocab_size-1")
    d_model: int = Field(64, ge=1, description="residual stream width")
    n_layers: int = Field(2, ge=1, description="number of blocks")
    mixers: list[list[Mixer]] = Field(
        default_factory=lambda: [["attention", "mamba2"]],
        description="mixers each layer owns: one list for all layers, or one list per layer",
    )
    num_heads: int = Field(8, ge=1, description="value heads (the recurrent state has one [K, V] per head)")
    head_dim_v: int = Field(16, ge=1, description="value head size V")
    num_qk_heads: int = Field(1, ge=1, description="query/key heads; each serves num_heads/num_qk_heads value heads")
    head_dim_qk: int = Field(16, ge=1, description="query/key head size K")
    mlp_hidden: int = Field(256, ge=0, description="SwiGLU hidden width (presets solve it by counting)")
    conv_size: int = Field(4, ge=1, description="kernel of the short causal depthwise convs on k, v, q_linear")
    kv_conv: bool = Field(
        True, description="the short convs on the shared k and v (the Oryx block); false: plain projections, "
        "e.g. a Transformer++ without them, to separate the conv's effect from mode switching"
    )
    conv_activation: Literal["auto", "silu", "none"] = Field(
        "auto", description="after those convs; auto = the linear kind's (oryx.model.kinds: silu for gdn, "
        "none for mamba2, as in the paper)"
    )
    query_tying: Literal["separate", "shared", "lowrank"] = Field(
        "separate",
        description="separate: one query projection per mode (paper default); shared: one for both "
        "(the paper's ablation); lowrank: shared plus a rank-`query_rank` delta for linear mode",
    )
    query_rank: int = Field(16, ge=1, description="rank of the linear-mode query delta when query_tying=lowrank")
    position_encoding: Literal["rope", "none"] = Field("rope", description="inside attention only")
    rope_theta: float = Field(10_000.0, gt=0)
    max_seq_len: int = Field(8192, ge=1, description="longest context (cache included) the model accepts")
    train_seq_len: int | None = Field(
        None, ge=1, description="window length the model was trained on (written by the trainer); "
        "rolling-window evaluation defaults to it"
    )
    norm_eps: float = Field(1e-6, gt=0)
    tie_embeddings: bool = Field(True, description="output projection = input embedding")
    init_std: float = Field(0.02, gt=0)
    default_schedule: str = Field(
        "all_linear", description="modes of layers owning two mixers when a forward is given no modes"
    )
    backend: Backend = Field("auto", description="kernels: auto | torch | naive | triton (oryx.ops.backend)")
    chunk_size: int = Field(64, ge=1, description="chunk length of the chunked recurrences")
    # learned routing (issue 17): the router's parameters live in the model; None = no router (older
    # checkpoints, whose config.json lacks the key, load as such)
    router: RouterConfig | None = Field(
        None, description="a learned per-position router for the layers that own two mixers (oryx.routing.router)"
    )

    @field_validator("mixers", mode="before")
    @classmethod
    def _one_list_for_all(cls, value):
        """Accept a flat list (same mixers in every layer); store one list per layer after validation."""
        if isinstance(value, (list, tuple)) and value and all(isinstance(m, str) for m in value):
            return [list(value)]
        return value

    @field_validator("mixers")
    @classmethod
    def _check_mixers(cls, value: list[list[str]]) -> list[list[str]]:
        for i, layer in enumerate(value):
            if not layer:
                raise ValueError(f"layer {i} owns no mixer")
            if len(set(layer)) != len(layer):
                raise ValueError(f"layer {i} names a mixer twice: {layer}")
            if sum(m in KINDS for m in layer) > 1:
                raise ValueError(f"layer {i} owns two linear mixers {layer}; a layer has at most one")
        return value

    @field_validator("default_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        from oryx.routing import parse

        return str(parse(value))

    @model_validator(mode="after")
    def _check_shapes(self) -> OryxConfig:
        if len(self.mixers) not in (1, self.n_layers):
            raise ValueError(f"mixers has {len(self.mixers)} layer lists; give 1 (for all) or n_layers={self.n_layers}")
        if self.num_heads % self.num_qk_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_qk_heads ({self.num_qk_heads})"
            )
        if self.position_encoding == "rope" and self.head_dim_qk % 2:
            raise ValueError(f"rope needs an even head_dim_qk, got {self.head_dim_qk}")
        if self.router is not None and not self.dual_layers:
            raise ValueError("router: no layer owns both attention and a linear mixer, so there is nothing to route")
        return self

    # ---- derived facts the model and tools use -------------------------------------------------
    def layer_mixers(self, layer: int) -> list[str]:
        """The mixers layer `layer` owns."""
        return self.mixers[0] if len(self.mixers) == 1 else self.mixers[layer]

    @property
    def dual_layers(self) -> list[int]:
        """The layers that own attention and a linear mixer: where a schedule chooses each position's mode."""
        return [i for i in range(self.n_layers) if len(self.layer_mixers(i)) == 2]

    def linear_kind(self, layer: int) -> str | None:
        """The linear mixer of a layer (a key of `oryx.model.kinds.KINDS`: 'mamba2', 'gdn', ...), or None."""
        return next((m for m in self.layer_mixers(layer) if m in KINDS), None)

    @property
    def linear_kinds(self) -> list[str]:
        """The linear kinds of the model's layers, each once, in layer order ([] for a Transformer)."""
        kinds = (self.linear_kind(i) for i in range(self.n_layers))
        return list(dict.fromkeys(k for k in kinds if k is not None))

    @property
    def baseline(self) -> bool:
        """True when no layer owns two mixers (Transformer, pure recurrence, static hybrid): a
        single-mixer baseline, which runs natively and takes no schedule."""
        return not self.dual_layers

    def conv_act(self, layer: int) -> str | None:
        """Activation after the short convs of a layer: `conv_activation`, or under `auto` the layer's
        linear kind's (none for attention-only layers)."""
        if self.conv_activation == "auto":
            kind = self.linear_kind(layer)
            return KINDS[kind].conv_activation if kind is not None else None
        return None if self.conv_activation == "none" else "silu"

    @property
    def family(self) -> str:
        """A readable name of the architecture, e.g. 'oryx-mamba2', 'transformer', 'hybrid'."""
        kinds = {tuple(self.layer_mixers(i)) for i in range(self.n_layers)}
        if len(kinds) > 1:
            return "hybrid"
        (layer,) = kinds
        if len(layer) == 2:
            return "oryx-" + next(m for m in layer if m in KINDS)
        return "transformer" if layer == (ATTENTION,) else layer[0]
