"""The U-Net's input layout: noisy stem latents plus JEN-1's in-context channels, shared by training
and inference so both build exactly the same tensors.

    x = [ k*D noisy latents (stem-major) | per stem: D masked-latent channels, then 1 mask channel ]
        shape (B, k*D + k*(D+1), F) = (B, cfg.unet_in_channels, F)

Mask convention: ``1`` = frame to generate (its masked latent is zero), ``0`` = known frame (its latent
is copied in). Per stem role (Composer timestep vector):
- generated (``0 < t``): the task's frame mask: all ones for text-guided generation (full mask, all-empty
  masked audio, JEN-1 sec. 4.3), ones over the region for inpainting, ones right of the known part for
  continuation;
- given (``t = 0``): mask 0 everywhere, the clean latent;
- free (``t = T``): mask 1 everywhere, empty latent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.config import HOP
from protocol.errors import RegionError


def in_context(z_known: Tensor, mask: Tensor) -> Tensor:
    """``z_known``: (B, k, D, F) whitened latents; ``mask``: (B, k, F), 1 = generate, 0 = known.

    Returns (B, k*(D+1), F): per stem its latent zeroed where mask is 1, then the mask itself.
    """
    B, k, D, F = z_known.shape
    m = mask.to(dtype=z_known.dtype).reshape(B, k, 1, F)
    ctx = torch.cat([z_known * (1.0 - m), m], dim=2)  # (B, k, D+1, F)
    return ctx.reshape(B, k * (D + 1), F)


def empty_context(B: int, k: int, D: int, F: int, *, device=None, dtype=torch.float32) -> Tensor:
    """The text-to-music context: full mask, empty masked audio. (B, k*(D+1), F)."""
    return in_context(torch.zeros(B, k, D, F, device=device, dtype=dtype),
                      torch.ones(B, k, F, device=device, dtype=dtype))


def unet_input(z_noisy: Tensor, context: Tensor) -> Tensor:
    """``z_noisy``: (B, k, D, F), ``context``: (B, k*(D+1), F) -> (B, k*D + k*(D+1), F)."""
    B, k, D, F = z_noisy.shape
    return torch.cat([z_noisy.reshape(B, k * D, F), context], dim=1)


def region_frame_mask(start: int, end: int, frames: int, hop: int = HOP) -> Tensor:
    """(F,) float mask with 1 on every latent frame that overlaps samples ``[start, end)``.

    Frame ``f`` covers samples ``[f*hop, (f+1)*hop)``.
    """
    if not 0 <= start < end or start >= frames * hop:
        raise RegionError(f"region [{start}, {end}) samples is empty or outside {frames * hop} samples")
    mask = torch.zeros(frames)
    first, last = start // hop, min(frames, -(-end // hop))  # ceil(end / hop)
    mask[first:last] = 1.0
    return mask
