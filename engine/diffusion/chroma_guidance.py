"""Chroma guidance: steer the sampler's data prediction of the tonal stems onto the chords they are given.

The U-Net hears the chord track, yet at high noise its data prediction of the bass averages the note away
(docs/MODEL_CARD.md, "What limits key adherence now"), and training it to decide the note there
(``engine.train.bass_root``) cost the bass its rhythm and the other stems their roles. This guide asks the same
question at sampling time instead, the way universal guidance (Bansal et al. 2023) and DPS (Chung et al. 2023) steer
a sampler with a differentiable measure of its data prediction: at each step above ``t_min``, the data prediction
of each guided stem is decoded by the frozen autoencoder, scored with
:func:`engine.diffusion.chroma.chroma_share_loss` (the bass on the sounding chord's root, the instrument on its
tones, the melody on the scale of the prompt's key, or else the progression's collection, per chord segment), and
moved against the gradient:

    x0 <- x0 - scale * sigma(t) * g / rms(g)        (per stem, in whitened latent units)

The sampler then goes on from the moved prediction (DPM-Solver++ is written in data prediction), so the U-Net
keeps everything the chords do not decide: rhythm, timbre, the drums. Only the decoder is differentiated, not the
U-Net: one decoder forward and backward per guided stem and step.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from engine.diffusion.chroma import (BASS_BAND, TONAL_BAND, chord_roots, chroma_share_loss, mono_decoder, root_targets,
                                    scale_targets)

# which stems are guided, and onto what: (stem name, target kind, band)
GUIDED_STEMS = (("bass", "root", BASS_BAND), ("instrument", "tones", TONAL_BAND), ("melody", "scale", TONAL_BAND))
DEFAULT_T_MIN = 0.3  # guide while t >= t_min * T (11 of 20 dpmpp-2m steps; 0.5: 10): where the notes are decided


@contextmanager
def _frozen(params: tuple[Tensor, ...]):
    """``requires_grad`` off for ``params`` inside the block, restored after (weights that need no gradient keep
    autograd from saving what only their gradient would need)."""
    live = [p for p in params if p.requires_grad]
    for p in live:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in live:
            p.requires_grad_(True)


@dataclass
class ChromaGuide:
    """Moves the data prediction of the generated stack (1, n*D, F) of ``n`` generated stems."""

    decode: Callable[[Tensor, int], Tensor]  # whitened (m, D, F) -> mono audio (m, samples), differentiable
    samples: int
    dim: int  # D
    positions: list[int]  # each guided stem's position in the generated stack
    targets: Tensor  # (m, 12, F) 0/1 per guided stem
    bands: list[tuple[float, float]]
    weights: Tensor  # (m, F) frames that count (the generated region)
    scale: float
    t_min: float  # absolute time: guide while t >= t_min
    params: tuple[Tensor, ...] = ()  # the decoder's weights, kept out of the graph while the guide runs

    def __call__(self, x0: Tensor, t: float, sigma: float) -> Tensor:
        if self.scale <= 0 or t < self.t_min or not self.positions:
            return x0
        n = x0.shape[1] // self.dim
        steps = []
        # one stem at a time (each stem's measure depends on its own decode only, so the gradient is the same as
        # decoding them together) and the decoder's weights out of the graph: autograd keeps one stem's
        # activations, and only those the gradient in z needs (memory: docs/MODEL_CARD.md, "Chroma guidance")
        with torch.inference_mode(False), torch.enable_grad(), _frozen(self.params):
            stack = x0.detach().clone().reshape(n, self.dim, x0.shape[-1])
            for j, (pos, band) in enumerate(zip(self.positions, self.bands)):
                z = stack[pos:pos + 1].clone().requires_grad_(True)
                s, count = chroma_share_loss(self.decode(z, self.samples), self.targets[j:j + 1],
                                             self.weights[j:j + 1], band, "segment")
                (grad,) = torch.autograd.grad(s / count.clamp_min(1.0), z)
                steps.append(grad[0] / grad.pow(2).mean().sqrt().clamp_min(1e-12))
        moved = stack.clone()
        for pos, step in zip(self.positions, steps):
            moved[pos] = stack[pos] - float(self.scale) * float(sigma) * step
        return moved.reshape(x0.shape).to(x0.dtype)


def make_chroma_guide(model, stems: tuple[str, ...], generated: list[int], chords: Tensor, frame_mask: Tensor,
                      samples: int, scale: float, T: float, collection: tuple[int, ...] | None = None,
                      t_min: float = DEFAULT_T_MIN) -> ChromaGuide | None:
    """The guide for a request, or None when nothing is guided (scale 0, no chords, no tonal stem generated).
    ``chords``: (24, F) the chord track the U-Net hears; ``frame_mask``: (F,) 1 where the stems are generated;
    ``collection``: the scale of the key the prompt names, the melody's target
    (:func:`engine.diffusion.chroma.scale_targets`; None: the union of the chords' tones)."""
    if scale <= 0 or chords is None or float(chords[12:].sum()) == 0:
        return None
    roots, tones = chord_roots(chords[None]), chords[None, :12]
    positions, targets, bands = [], [], []
    for name, kind, band in GUIDED_STEMS:
        if name in stems and stems.index(name) in generated:
            positions.append(generated.index(stems.index(name)))
            targets.append(root_targets(roots) if kind == "root" else tones if kind == "tones"
                           else scale_targets(tones, collection))
            bands.append(band)
    if not positions:
        return None
    weights = frame_mask.float()[None].expand(len(positions), -1).to(chords.device)
    return ChromaGuide(mono_decoder(model), samples, int(model.config.whitened_dim), positions,
                       torch.cat(targets).float().to(chords.device), bands, weights, float(scale), float(t_min) * T,
                       tuple(model.autoencoder.parameters()))
