"""Packing the attention-mode positions of a batch into a dense query tensor, and back.

Both directions are a handful of kernels over [B, T] and no host synchronisation: the slot of each
selected position is its rank (a cumulative sum; a sort cost 62 us of GPU time at T = 32768 on the
H200, benchmarks/results/mixer-parts-h200.md, probe 4), and the way back writes the packed rows into the
caller's tensor of other-mode outputs with a gradient that reads only what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packing:
    """Where the selected positions of each row went.

    index: [B, n] position (within the call) of packed slot i, non-decreasing along a row.
    valid: [B, n] False for padding slots (rows with fewer selected positions than n): they come first
        in a row and point at the call's position 0, so that a causal kernel pays little for them (on a
        fresh sequence they see one key; at the end of a row they would see every key).
    mask: [B, T] the selection it was made from.
    """

    index: torch.Tensor
    valid: torch.Tensor
    mask: torch.Tensor

    @property
    def length(self) -> int:
        """T, the positions in the call."""
        return self.mask.shape[1]

    @classmethod
    def from_mask(cls, mask: torch.Tensor, most: int, slots: int | None = None) -> Packing:
        """mask: [B, T] bool, True where a position is selected; `most`: the largest number selected in
        a row (on the host: `mode_counts(mask)[0][1]`); `slots`: the packed length n, at least `most` (a
        kernel's preferred size), default `most`."""
        B, T = mask.shape
        n = most if slots is None else slots
        if n < most:
            raise ValueError(f"{n} packed slots cannot hold {most} selected positions")
        rank = mask.cumsum(1)                                        # [B, T]: selected up to here
        count = rank[:, -1:] if T else torch.zeros(B, 1, dtype=rank.dtype, device=mask.device)
        first = n - count                                            # [B, 1] first valid slot
        # selected positions fill the last `count` slots in order; the others go to a spare column n
        slot = torch.where(mask, rank - 1 + first, n)
        pos = torch.arange(T, device=mask.device).expand(B, T)
        index = torch.zeros(B, n + 1, device=mask.device, dtype=pos.dtype).scatter_(1, slot, pos)[:, :n]
        valid = torch.arange(n, device=mask.device) >= first
        return cls(index=index, valid=valid, mask=mask)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, *D] -> [B, n, *D]."""
        return x.gather(1, _expand(self.index, x))

    def scatter(self, y: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n, *D] -> [B, T, *D]: y at the selected positions, `fill` [B, T, *D] (or zeros) elsewhere."""
        return _Scatter.apply(y, fill, self)


def _expand(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """index [B, n] -> [B, n, *like.shape[2:]] (a view) for gather/scatter along dim 1."""
    return index.view(*index.shape, *([1] * (like.dim() - 2))).expand(-1, -1, *like.shape[2:])


class _Scatter(torch.autograd.Function):
    """y's valid slots written into a copy of fill (or zeros). Autograd's own scatter would, for the
    padding slots, need a spare row and a slice, whose backward allocates and copies a whole
    [B, T+1, ...] gradient: here the backward gathers y's rows and zeroes fill's at the selected
    positions, one pass each."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, fill: torch.Tensor | None, packing: Packing) -> torch.Tensor:
        B, T = packing.mask.shape
        out = y.new_zeros(B, T, *y.shape[2:]) if fill is None else fill.to(y.dtype, copy=True)
        if y.shape[1]:
            # padding slots all point at position 0: they write what 0 must hold (its own packed row
            # when it is selected, which is then the row's first valid slot; else what out holds), so
            # that the duplicate writes agree whatever their order
            first = (~packing.valid).sum(1).clamp(max=y.shape[1] - 1)                       # [B]
            own = y.gather(1, _expand(first[:, None], y))                                    # [B, 1, *D]
            head = torch.where(_bcast(packing.mask[:, :1], y), own, out[:, :1])
            y = torch.where(_bcast(packing.valid, y), y, head)
            out.scatter_(1, _expand(packing.index, y), y)
        ctx.save_for_backward(packing.index, packing.valid, packing.mask)  # checked for in-place changes
        ctx.fill_dtype = None if fill is None else fill.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        packing = Packing(*ctx.saved_tensors)
        grad_y = grad.gather(1, _expand(packing.index, grad))
        grad_y = torch.where(_bcast(packing.valid, grad_y), grad_y, 0)
        grad_fill = None
        if ctx.fill_dtype is not None and ctx.needs_input_grad[1]:
            grad_fill = grad.masked_fill(_bcast(packing.mask, grad), 0).to(ctx.fill_dtype)
        return grad_y, grad_fill, None


def _bcast(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """flags [B, L] bool -> [B, L, 1, ...] broadcastable against `like` [B, L, *D]."""
    return flags.view(*flags.shape, *([1] * (like.dim() - 2)))
