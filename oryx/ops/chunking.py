"""Helpers shared by the chunked linear-recurrence implementations."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """[B, T, H, *D] -> [B, H, N, C, *D], zero-padding T up to N * C.

    Zero padding is exact for the recurrences here: a padded step has k = v = 0 and log-decay 0,
    so it leaves the state unchanged.
    """
    B, T, H = x.shape[:3]
    pad = (-T) % chunk_size
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, 0, 0, pad))
    x = x.reshape(B, (T + pad) // chunk_size, chunk_size, H, *x.shape[3:])
    return x.transpose(1, 3).transpose(2, 3)  # [B, H, N, C, *D]


def from_chunks(x: torch.Tensor, T: int) -> torch.Tensor:
    """[B, H, N, C, *D] -> [B, T, H, *D] (drops the padding)."""
    B, H, N, C = x.shape[:4]
    x = x.transpose(2, 3).transpose(1, 3).reshape(B, N * C, H, *x.shape[4:])
    return x[:, :T]


def segment_decay(gc: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """exp(gc_i - gc_j) for j <= i (j < i when `strict`), else 0.

    gc: [..., C] cumulative log-decay inside a chunk. Returns [..., C, C]. The masked entries are set to
    -inf before exp, so neither they nor their gradients can overflow.
    """
    C = gc.shape[-1]
    diff = gc[..., :, None] - gc[..., None, :]
    keep = torch.ones(C, C, dtype=torch.bool, device=gc.device).tril(-1 if strict else 0)
    return diff.masked_fill(~keep, float("-inf")).exp()
