"""`OryxForCausalLM`: embedding, blocks (pre-norm mixer + SwiGLU MLP), final norm, tied output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from oryx.errors import OryxError
from oryx.model import checkpoint
from oryx.model.cache import LayerCache, OryxCache
from oryx.model.config import OryxConfig
from oryx.model.layers import RMSNorm, SwiGLU
from oryx.model.mixer import OryxMixer
from oryx.model.modes import Modes, check_input_ids, resolve_modes
from oryx.model.routed import Routing, calibrate, learned_schedule
from oryx.model.sampling import sample
from oryx.ops.attention import mode_counts
from oryx.ops.precision import upcast
from oryx.routing import Router, Schedule, parse


@dataclass
class OryxOutput:
    """logits [B, T, vocab]; loss (mean next-token cross-entropy) when labels were given;
    modes [L, B, T] the mode each layer ran at each position (True = attention); the cache if any.
    With learned routing: router_scores [L, B, T] float32 (the router's logits; NaN in layers it does not
    route) and, in training, router_loss (the budget loss, weighted; add it to the loss)."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    modes: torch.Tensor | None = None
    cache: OryxCache | None = None
    router_scores: torch.Tensor | None = None
    router_loss: torch.Tensor | None = None


class OryxBlock(nn.Module):
    def __init__(self, cfg: OryxConfig, layer: int):
        super().__init__()
        self.mixer_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mixer = OryxMixer(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.mlp_hidden) if cfg.mlp_hidden > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        cache: LayerCache | None,
        offset: int,
        counts: tuple[int, int] | None = None,
        gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, T, d]; mask: [B, T]; counts, gate: see `OryxMixer.forward` -> [B, T, d]."""
        x = x + self.mixer(self.mixer_norm(x), mask, cache, offset, counts, gate)
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x


class OryxForCausalLM(nn.Module):
    """A causal language model whose layers run attention, a linear recurrence, or either per position.

        model = OryxForCausalLM(oryx.presets.get("oryx-mamba2-tiny"))
        out = model(input_ids, modes="last:32")      # or a bool mask [B, T] / [L, B, T], or a schedule
        out.logits                                    # [B, T, vocab]
    """

    def __init__(self, config: OryxConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(OryxBlock(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        # the learned router (issue 17): its parameters and calibrated thresholds are part of the model
        self.router = Router(config.router, config.d_model, config.dual_layers) if config.router is not None else None
        self.gradient_checkpointing = False
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, init_std) for projections and embeddings; the projections that write into the
        residual stream are scaled down by sqrt(2 * n_layers) (GPT-2)."""
        std = self.config.init_std
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, OryxMixer):
            nn.init.normal_(module.o_proj.weight, 0.0, std / (2 * self.config.n_layers) ** 0.5)
        if isinstance(module, SwiGLU):
            nn.init.normal_(module.w_down.weight, 0.0, std / (2 * self.config.n_layers) ** 0.5)
        if isinstance(module, OryxMixer) and module.lin is not None and hasattr(module.lin, "q_up"):
            nn.init.zeros_(module.lin.q_up.weight)  # the low-rank delta starts at zero: q_l = q_a

    # ---- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        modes: Modes = None,
        cache: OryxCache | None = None,
        labels: torch.Tensor | None = None,
    ) -> OryxOutput:
        """input_ids: [B, T] token ids; with `cache`, they continue the cached sequence.

        modes: None (config.default_schedule for layers with two mixers), a schedule / schedule string,
        or a bool mask [B, T] or [L, B, T] (True = attention). labels: [B, T] ids (-100 = ignore); the
        loss predicts labels[:, t+1] from position t.
        """
        cfg = self.config
        check_input_ids(input_ids, cfg.vocab_size)
        B, T = input_ids.shape
        offset = 0
        if cache is not None:
            if cache.batch_size != B:
                raise OryxError(f"the cache holds {cache.batch_size} sequences but input_ids has {B}")
            offset = cache.seq_len
        if offset + T > cfg.max_seq_len:
            raise OryxError(
                f"context of {offset + T} positions is longer than the model supports (max_seq_len={cfg.max_seq_len})"
            )
        mask = resolve_modes(cfg, modes, input_ids, offset)
        counts = mode_counts(mask)  # every layer's, in one device-to-host read
        learned = learned_schedule(cfg.default_schedule, modes)
        route = Routing(self, learned, (B, T), input_ids.device) if learned is not None else None
        masks = list(mask)  # a routed layer's row is replaced, never written in place (autograd saves rows)
        x = self.embed(input_ids)
        for i, block in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            gate = None
            if route is not None and route.routes(i):  # decided from this layer's input (one host read)
                decision = route(x, i)
                masks[i], gate, counts[i] = decision.mask, decision.gate, mode_counts(decision.mask)[0]
            if self.gradient_checkpointing and self.training and cache is None:
                x = torch.utils.checkpoint.checkpoint(block, x, masks[i], None, offset, counts[i], gate, use_reentrant=False)
            else:
                x = block(x, masks[i], layer_cache, offset, counts[i], gate)
        x = self.norm(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.embed.weight)
        if cache is not None:
            cache.seq_len += T
        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise OryxError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}")
            loss = F.cross_entropy(
                upcast(logits[:, :-1].flatten(0, 1)), labels[:, 1:].flatten(), ignore_index=-100
            )
        if route is None:
            return OryxOutput(logits=logits, loss=loss, modes=mask, cache=cache)
        return OryxOutput(logits=logits, loss=loss, modes=torch.stack(masks), cache=cache, router_scores=route.scores,
                          router_loss=route.loss())

    # ---- decoding --------------------------------------------------------------------------------
    def new_cache(self, batch_size: int) -> OryxCache:
        """An empty decoding state for `batch_size` sequences; pass it as `cache=` to append positions."""
        return OryxCache(self.config.n_layers, batch_size)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        modes: Modes = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
        return_modes: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Prefill `input_ids` [B, T], then sample `max_new_tokens` tokens one step at a time.

        modes: a schedule (string) evaluated at each position, or a bool mask covering prompt and new
        tokens ([B, T + max_new_tokens] or [L, B, T + max_new_tokens]). temperature 0 = greedy.
        Rows that produced `eos_token_id` keep emitting it. Returns [B, T + new] ids, and with
        `return_modes` also the modes [L, B, T + new - 1] of every position that made a prediction (the
        last token is sampled, never run).
        """
        check_input_ids(input_ids, self.config.vocab_size)
        if max_new_tokens < 0:
            raise OryxError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise OryxError(f"temperature must be >= 0, got {temperature}")
        B, T = input_ids.shape
        total = T + max_new_tokens
        if isinstance(modes, torch.Tensor):
            if modes.shape[-1] != total or modes.shape[-2] != B:
                raise OryxError(
                    f"a mode mask for generate must cover prompt + new tokens: [..., {B}, {total}], "
                    f"got {tuple(modes.shape)}"
                )
            step_modes = lambda a, b, ids: modes[..., a:b]  # noqa: E731
        else:
            schedule: Schedule | None = None if modes is None else parse(modes)
            step_modes = lambda a, b, ids: schedule  # noqa: E731  (resolved with start = cache length)
        cache = self.new_cache(B)
        out = self(input_ids, modes=step_modes(0, T, input_ids), cache=cache)
        tokens, ran = [input_ids], [out.modes]
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        for pos in range(T, total):
            nxt = sample(out.logits[:, -1], temperature, top_k, generator)
            if eos_token_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_token_id), nxt)
                done |= nxt == eos_token_id
            tokens.append(nxt[:, None])
            if pos + 1 < total:
                out = self(nxt[:, None], modes=step_modes(pos, pos + 1, nxt[:, None]), cache=cache)
                ran.append(out.modes)
        ids = torch.cat(tokens, dim=1)
        return (ids, torch.cat(ran, dim=-1)) if return_modes else ids

    # ---- checkpoints -----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors into `directory` (atomically, file by file)."""
        return checkpoint.save(self, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> OryxForCausalLM:
        """Load a directory written by `save_pretrained`; a missing or corrupt file is a CheckpointError."""
        return checkpoint.load(cls, directory, device, dtype)

    def calibrate_router(self, batches, targets=None) -> dict[float, list[float]]:
        """Calibrate the learned router's thresholds on held-out input_ids batches ([b, T] each), for each
        fraction in config.router.targets, or in `targets` (which replace them, e.g. to run a trained
        router at another fraction); returns {target: [threshold per routed layer]}."""
        return calibrate(self, batches, targets)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
