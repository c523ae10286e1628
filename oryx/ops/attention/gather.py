"""Packing the attention-mode positions of a batch into a dense query tensor, and back."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packing:
    """Where the selected positions of each row went.

    index: [B, n] position (within the call) of packed slot i; padding slots point at position T-1.
    valid: [B, n] False for padding slots (rows with fewer selected positions than the longest row).
    """

    index: torch.Tensor
    valid: torch.Tensor
    length: int  # T, the positions in the call

    @classmethod
    def from_mask(cls, mask: torch.Tensor, most: int | None = None) -> Packing:
        """mask: [B, T] bool, True where a position is selected; `most`: the largest number selected
        in a row, when the caller already has it on the host (else read from the device: a sync)."""
        B, T = mask.shape
        n = most if most is not None else (int(mask.sum(1).max()) if T else 0)
        pos = torch.arange(T, device=mask.device).expand(B, T)
        # selected positions sort first, in order; the rest sort after them
        order = torch.where(mask, pos, pos + T).sort(dim=1).values[:, :n]
        valid = order < T
        return cls(index=torch.where(valid, order, T - 1), valid=valid, length=T)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, *D] -> [B, n, *D]."""
        idx = self.index.view(*self.index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return x.gather(1, idx)

    def scatter(self, y: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n, *D] -> [B, T, *D]: y at the selected positions, `fill` [B, T, *D] (or zeros) elsewhere."""
        B, n = self.index.shape
        # padding slots are sent to an extra row T, dropped after the scatter
        target = torch.where(self.valid, self.index, self.length)
        idx = target.view(B, n, *([1] * (y.dim() - 2))).expand(-1, -1, *y.shape[2:])
        if fill is None:
            out = y.new_zeros(B, self.length + 1, *y.shape[2:])
        else:  # one copy of fill
            out = torch.cat([fill.to(y.dtype), y.new_zeros(B, 1, *y.shape[2:])], 1)
        return out.scatter_(1, idx, y)[:, : self.length]
