"""Classifier-free guidance (Ho & Salimans 2022) with the conditional and unconditional branches
batched into ONE forward pass: the first half of the batch is conditional, the second half holds the
unconditional text (the empty caption, or the negative prompt when one is given).

    eps = eps_uncond + w * (eps_cond - eps_uncond)

``w = 1`` is plain conditional sampling and skips the unconditional half.

Chord guidance: a model with a chord track can weigh the chords apart from the text, as InstructPix2Pix
(Brooks et al. 2023, eq. 3) weighs its two conditions: three branches in one forward, the full condition
(text + chords), the text without chords and the unconditional one,

    eps = eps_uncond + w * (eps_text - eps_uncond) + w_c * (eps_full - eps_text)

``w_c = w`` is plain guidance of the full condition (two branches). Training drops the chords alone in a
share of the captioned items (``--chord-dropout``), so the text-only branch is one the model was trained on.
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


def uses_chord_guidance(scale: float, chord_scale: float | None) -> bool:
    """Whether the chords get a weight of their own (three branches, or two when ``scale == 1``)."""
    return chord_scale is not None and float(chord_scale) != float(scale)


def branch_layout(scale: float, chord_scale: float | None) -> tuple[list[int], list[bool]]:
    """The branches of one guided forward, in :func:`guided_eps`'s order: for each, the row of
    :func:`encode_guidance_text`'s states it reads (0 the prompt, 1 the unconditional text) and whether it hears
    the chords. Plain guidance: ([0, 1], [True, False]); chord guidance: ([0, 0, 1], [True, False, False]), or
    ([0, 0], [True, False]) when ``scale == 1``; unguided: ([0], [True])."""
    if uses_chord_guidance(scale, chord_scale):
        rows = [0, 0, 1] if uses_guidance(scale) else [0, 0]
    else:
        rows = [0, 1] if uses_guidance(scale) else [0]
    return rows, [i == 0 for i in range(len(rows))]


def guidance_branches(scale: float, chord_scale: float | None) -> int:
    """How many branches one guided forward holds: 1, 2 (cond, uncond / full, text) or 3 (full, text, uncond)."""
    return len(branch_layout(scale, chord_scale)[0])


def guided_eps(forward: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, scale: float,
               chord_scale: float | None = None) -> Tensor:
    """One batched forward for every branch.

    ``forward(x, t) -> eps`` takes the batch repeated :func:`guidance_branches` times, in the order cond,
    uncond (plain guidance) or full, text-only[, uncond] (chord guidance); ``x``: (B, C, F), ``t``: (B, k).
    Returns the guided eps for the ``B`` inputs.
    """
    n = guidance_branches(scale, chord_scale)
    if n == 1:
        return forward(x, t)
    eps = forward(torch.cat([x] * n, dim=0), torch.cat([t] * n, dim=0))  # (nB, C', F)
    parts = eps.chunk(n, dim=0)
    if not uses_chord_guidance(scale, chord_scale):
        cond, uncond = parts
        return uncond + float(scale) * (cond - uncond)
    full, text = parts[0], parts[1]
    base = text if n == 2 else parts[2] + float(scale) * (text - parts[2])
    return base + float(chord_scale) * (full - text)
