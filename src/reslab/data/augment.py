"""Batched normalisation and augmentation, run on the training device after transfer.

The whole batch is processed with tensor ops (no per-sample Python): the paper's pad-4 random crop and
horizontal flip are a gather with per-image offsets and a masked flip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def normalize(
    x: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """uint8 (B, C, H, W) in 0..255 -> float32, per-channel standardised. ``mean``/``std``: one value per
    channel, or tensors already on ``x``'s device shaped (1, C, 1, 1) (callers in a loop pass those)."""
    mean_t = torch.as_tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float() / 255.0 - mean_t) / std_t


def _draws(
    shape: tuple[int, ...], part: tuple[int, int] | None, draw
) -> torch.Tensor:  # the rows [start, start + shape[0]) of one draw for all ``total`` images
    if part is None:
        return draw(shape)
    start, total = part
    return draw((total, *shape[1:]))[start : start + shape[0]]


def random_crop(
    x: torch.Tensor, pad: int, generator: torch.Generator | None = None, part: tuple[int, int] | None = None
) -> torch.Tensor:
    """Zero-pad by ``pad`` on each side and take a random crop of the original size, per image.

    Padding happens before normalisation (as with torchvision's RandomCrop on the raw image), so the
    border is black, not the mean. ``part=(start, total)``: ``x`` is images ``start..`` of a batch of ``total``
    split across processes; the offsets are drawn for the whole batch and sliced, so each process crops its
    images exactly as one process would crop the whole batch (and all processes' generators stay equal).
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy = _draws((b, 1), part, lambda s: torch.randint(0, 2 * pad + 1, s, device=x.device, generator=generator))
    dx = _draws((b, 1), part, lambda s: torch.randint(0, 2 * pad + 1, s, device=x.device, generator=generator))
    rows = (dy + torch.arange(h, device=x.device)).view(b, 1, h, 1)  # (B, 1, H, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(b, 1, 1, w)  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chans = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, chans, rows, cols]


def random_hflip(
    x: torch.Tensor, generator: torch.Generator | None = None, part: tuple[int, int] | None = None
) -> torch.Tensor:
    """Flip each image left-right with probability 1/2 (``part`` as in `random_crop`)."""
    flip = _draws((x.shape[0],), part, lambda s: torch.rand(s, device=x.device, generator=generator)) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
