"""Classifier-free guidance (Ho & Salimans 2022) with the conditional and unconditional branches
batched into ONE forward pass: the first half of the batch is conditional, the second half holds the
unconditional text (the empty caption, or the negative prompt when one is given).

    eps = eps_uncond + w * (eps_cond - eps_uncond)

``w = 1`` is plain conditional sampling and skips the unconditional half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from engine.text.attributes import attribute_tensor


@dataclass
class GuidanceText:
    """Text states ready for the U-Net. ``states``: (nB, L, H); ``mask``: (nB, L) bool; n = 2 when guided;
    ``attrs``: (nB, 2) tempo and key read off the same prompts (:mod:`engine.text.attributes`)."""

    states: Tensor
    mask: Tensor
    scale: float
    attrs: Tensor | None = None

    @property
    def guided(self) -> bool:
        return uses_guidance(self.scale)


def uses_guidance(scale: float) -> bool:
    return float(scale) != 1.0


def encode_guidance_text(encode: Callable[[list[str]], tuple[Tensor, Tensor]], cond: list[str],
                         uncond: list[str], scale: float) -> GuidanceText:
    """Encode ``cond + uncond`` prompts in one call (one padded batch), or ``cond`` alone when ``scale == 1``."""
    prompts = list(cond) + (list(uncond) if uses_guidance(scale) else [])
    states, mask = encode(prompts)  # (nB, L, H), (nB, L)
    return GuidanceText(states=states, mask=mask.bool(), scale=float(scale), attrs=attribute_tensor(prompts))


def guided_eps(forward: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, scale: float) -> Tensor:
    """One batched forward for both branches.

    ``forward(x, t) -> eps`` takes the doubled batch; ``x``: (B, C, F), ``t``: (B, k).
    Returns the guided eps for the ``B`` inputs.
    """
    if not uses_guidance(scale):
        return forward(x, t)
    eps = forward(torch.cat([x, x], dim=0), torch.cat([t, t], dim=0))  # (2B, C', F)
    cond, uncond = eps.chunk(2, dim=0)
    return uncond + float(scale) * (cond - uncond)
