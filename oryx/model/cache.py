"""Decoding state: per layer the conv states, the KV cache and the recurrent state, all kept up to date
at every position whatever its mode (both states absorb every position: oryx/model/mixer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LayerCache:
    """One layer's state after `length` positions.

    conv: name -> [B, conv_size-1, C], the last inputs of each short conv ('k', 'v', 'q').
    keys: [B, capacity, Hk, K] rotated keys; values: [B, capacity, Hk, G*V] (G value heads per qk head);
        only the first `length` rows are filled. None for layers without attention.
    state: [B, H, K, V] float32 recurrent state; None for layers without a linear mixer.
    """

    conv: dict[str, torch.Tensor] = field(default_factory=dict)
    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    state: torch.Tensor | None = None
    length: int = 0

    def append_kv(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k [B, T, Hk, K] and v [B, T, Hk, W] after the cached rows; return all rows so far.

        Storage grows by doubling, so appending one position costs O(1) amortised, not a copy of
        the whole cache (decoding latency in linear mode must not grow with the context).
        """
        B, T = k.shape[:2]
        need = self.length + T
        if self.keys is None or self.keys.shape[1] < need:
            capacity = max(need, 2 * (0 if self.keys is None else self.keys.shape[1]), 16)
            keys = k.new_empty(B, capacity, *k.shape[2:])
            values = v.new_empty(B, capacity, *v.shape[2:])
            if self.keys is not None:
                keys[:, : self.length] = self.keys[:, : self.length]
                values[:, : self.length] = self.values[:, : self.length]
            self.keys, self.values = keys, values
        self.keys[:, self.length : need] = k
        self.values[:, self.length : need] = v
        self.length = need
        return self.keys[:, :need], self.values[:, :need]


class OryxCache:
    """The decoding state of a whole model for a batch: `model.new_cache(batch_size)`."""

    def __init__(self, n_layers: int, batch_size: int):
        self.layers = [LayerCache() for _ in range(n_layers)]
        self.batch_size = batch_size
        self.seq_len = 0  # positions absorbed so far (the absolute position of the next input)

    def repeat(self, counts: int | list[int]) -> OryxCache:
        """A new cache whose rows copy this cache's rows: row b `counts[b]` times, in order (an int
        repeats every row that many times). This cache is left as it is.

        Continuing the copies with different suffixes scores several continuations of one shared
        prefix (the choices of a multiple-choice question) without recomputing the prefix.
        """
        reps = [counts] * self.batch_size if isinstance(counts, int) else list(counts)
        if len(reps) != self.batch_size or min(reps, default=0) < 0:
            raise ValueError(f"repeat needs one count >= 0 per cached row ({self.batch_size}), got {counts}")

        # the row index is formed on the host and copied once per device: repeat_interleave with
        # counts on the device would read their sum back (a synchronisation) for every cached tensor
        index = torch.repeat_interleave(torch.arange(len(reps)), torch.tensor(reps, dtype=torch.long))
        on_device: dict[torch.device, torch.Tensor] = {}

        def rows(t: torch.Tensor) -> torch.Tensor:
            if t.device not in on_device:
                on_device[t.device] = index.to(t.device, non_blocking=True)
            return t.index_select(0, on_device[t.device])

        out = OryxCache(len(self.layers), sum(reps))
        out.seq_len = self.seq_len
        for src, dst in zip(self.layers, out.layers):
            dst.conv = {name: rows(t) for name, t in src.conv.items()}
            if src.keys is not None:  # only the filled rows; append_kv grows the copy when needed
                dst.keys, dst.values = rows(src.keys[:, : src.length]), rows(src.values[:, : src.length])
            dst.state = None if src.state is None else rows(src.state)
            dst.length = src.length
        return out

    def state_bytes(self) -> int:
        """Bytes held now: conv states, the filled part of the KV cache, recurrent states."""
        total = 0
        for layer in self.layers:
            total += sum(t.numel() * t.element_size() for t in layer.conv.values())
            if layer.keys is not None:
                per_row = (layer.keys[0, 0].numel() * layer.keys.element_size()
                           + layer.values[0, 0].numel() * layer.values.element_size())
                total += per_row * layer.length * self.batch_size
            if layer.state is not None:
                total += layer.state.numel() * layer.state.element_size()
        return total
