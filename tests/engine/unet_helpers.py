"""Random U-Net inputs shared by the U-Net conditioning tests."""

from __future__ import annotations

import torch


def unet_inputs(cfg, batch: int = 2, frames: int = 24, seed: int = 3):
    """(x, t, text) for ``OmniUNet1d(cfg)``: noisy input channels, per-stem timesteps in [0, 1000), text states."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, cfg.unet_in_channels, frames, generator=g),
            torch.rand(batch, cfg.num_stems, generator=g) * 1000,
            torch.randn(batch, 5, cfg.text.hidden_size, generator=g))
