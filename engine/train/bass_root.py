"""The bass-root loss: teach the U-Net to decide the bass note from the chord track at high noise.

The key estimator (and a listener) takes the tonic from where the bass dwells, so a generated bass has to sound
its chords' roots. Measured on run 10 (``scripts/bass_root_probe.py``): the U-Net keeps the notes of a bass it
can still see (t <= 500) but its data prediction at t = 900 has no note, and the generated bass hits the roots
no more often than chance, although the chord track names every root. The plain loss does not make it: the bass
pitch is a small share of the whitened latent's variance, so the mean squared error barely sees it.

:func:`bass_chroma_loss` reads the note where a listener does, in the audio: the U-Net's data prediction of the
bass track is decoded by the frozen autoencoder, and the loss is minus the log share of its 30-300 Hz power
(the key estimator's bass band) that falls on the pitch class of the sounding chord's root, per frame of a
16384-point STFT. At high noise that prediction can only come from the conditioning, so the gradient goes
where the plain loss does not: to predicting the root from the chord track. Weighted by the bass track's
sigma(t)^2 (where the note is decided; a bass the U-Net still sees keeps its own passing tones).

:class:`BassRootProbe` is the first attempt, kept as a diagnostic (``scripts/bass_root_x0.py``): a small
classifier reading the root from a clean whitened bass latent (0.61 frame accuracy on held-out items). As a
training loss on the predicted latent it was fooled within 850 steps: its cross-entropy fell to 0.08 while the
decoded bass hit its roots in 2 of 25 chord segments at t = 900 (8 held-out items). A loss read off the decoded
audio cannot be fooled that way. Run 11 (docs/MODEL_CARD.md) trained with this one: generated bass on its roots
0.375 of chord segments, from 0.167.

Run 11's per-frame form cost the bass its rhythm (bass onsets 24 ms from the drum grid, from 6.6): every 25 ms
frame off the root paid, so held roots won over lines. ``pool="segment"`` sums each chord segment's power before
taking the share, so a passing tone or an onset costs little while the segment as a whole sits on its root. The
same loss reads the other tonal stems (:func:`chroma_share_loss`, ``--tonal-weight``): the instrument's power on
the sounding chord's tones, the melody's on the crop's chord tones (:func:`scale_targets`), in the key
estimator's 40 Hz-2 kHz band; run 11 had lost diatonic notes in those stems (key scale 0.578, from 0.719).

The labels are the chord roots whatever the bass plays (the studio's bass sounds the root in about two thirds of
its chord segments, passing tones and fifths in the rest), so the loss leans the bass towards the roots; the
diffusion loss keeps the rest of the data distribution.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import HOP, SAMPLE_RATE
from engine.diffusion.chroma import (  # noqa: F401  (re-exported: the training's names for them)
    BASS_BAND,
    N_FFT,
    PITCH_CLASSES,
    POOLS,
    STFT_HOP,
    TONAL_BAND,
    chord_roots,
    chroma_share_loss,
    pitch_class_matrix,
    root_targets,
    scale_targets,
)
from engine.text.attributes import prompt_attributes
from engine.text.chords import chord_features

log = logging.getLogger(__name__)


class BassRootProbe(nn.Module):
    """(B, D, F) whitened bass latent -> (B, 12, F) per-frame pitch-class logits (two convolutions over 5 and 1
    frames: a note's latent is steady over tens of frames, so a short window is enough)."""

    def __init__(self, dim: int, hidden: int = 64, kernel: int = 5) -> None:
        super().__init__()
        self.dim, self.hidden, self.kernel = dim, hidden, kernel
        self.net = nn.Sequential(nn.Conv1d(dim, hidden, kernel, padding=kernel // 2), nn.GELU(),
                                 nn.Conv1d(hidden, PITCH_CLASSES, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)

    def spec(self) -> dict[str, int]:
        return {"dim": self.dim, "hidden": self.hidden, "kernel": self.kernel}


def root_labels(harmony: Any, bpm: float | None, grid_offset: float, frames: int) -> Tensor:
    """(frames,) int64: the sounding chord's root per latent frame, -1 where no chord is known."""
    return chord_roots(chord_features(harmony, bpm, grid_offset, frames, HOP / SAMPLE_RATE))


def sample_probe_batch(latents: Any, items: list[int], batch: int, frames: int, bass: int,
                       generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random crops of the bass latents of ``items`` and their root labels: (B, D, frames), (B, frames)."""
    zs, ys = [], []
    for _ in range(batch):
        i = items[int(torch.randint(0, len(items), (1,), generator=generator))]
        z = latents.latents[i]
        start = int(torch.randint(0, int(z.shape[-1]) - frames + 1, (1,), generator=generator))
        zs.append(z[bass, :, start:start + frames].float())
        bpm, _ = prompt_attributes(latents.captions[i])
        ys.append(root_labels(latents.harmony[i], bpm, start * HOP / SAMPLE_RATE, frames))
    return torch.stack(zs), torch.stack(ys)


def probe_accuracy(probe: BassRootProbe, z: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        pred = probe(z).argmax(dim=1)
    known = labels >= 0
    return float((pred[known] == labels[known]).float().mean()) if known.any() else float("nan")


def probe_split(latents: Any, bass: int = 0, val_share: float = 0.1,
                seed: int = 0) -> tuple[list[int], list[int], torch.Generator]:
    """The items with chords, a bass and a tempo, shuffled by ``seed`` into (training, held-out) item indices;
    and the generator, drawn once, that :func:`train_probe` goes on with."""
    if latents.harmony is None:
        raise ValueError("the bass-root probe needs a corpus with chords (studio renders)")
    known = [i for i, h in enumerate(latents.harmony)
             if h is not None and bool(latents.present[i, bass]) and prompt_attributes(latents.captions[i])[0]]
    if len(known) < 10:
        raise ValueError(f"the bass-root probe needs at least 10 items with chords and bass, got {len(known)}")
    g = torch.Generator().manual_seed(seed)
    order = [known[j] for j in torch.randperm(len(known), generator=g).tolist()]
    n_val = max(1, int(round(len(order) * val_share)))
    return order[n_val:], order[:n_val], g


def train_probe(latents: Any, bass: int = 0, steps: int = 1500, batch: int = 32, frames: int = 192,
                lr: float = 2e-3, val_share: float = 0.1, seed: int = 0) -> tuple[BassRootProbe, dict[str, float]]:
    """Fit a :class:`BassRootProbe` on the clean bass latents of the items with known chords; returns it frozen
    (eval mode, no gradients) and its frame accuracy on the items held out of its training (``val_share``)."""
    train, val, g = probe_split(latents, bass, val_share, seed)
    frames = min(frames, min(int(latents.latents[i].shape[-1]) for i in train + val))
    dim = int(latents.latents[0].shape[1])
    torch.manual_seed(seed)
    probe = BassRootProbe(dim)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / steps)
    for step in range(steps):
        z, y = sample_probe_batch(latents, train, batch, frames, bass, g)
        loss = F.cross_entropy(probe(z), y, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0:
            log.info("bass-root probe: step %d/%d loss %.3f", step + 1, steps, float(loss.detach()))
    probe.eval().requires_grad_(False)
    zt, yt = sample_probe_batch(latents, train, 256, frames, bass, g)
    zv, yv = sample_probe_batch(latents, val, 256, frames, bass, g)
    stats = {"train_accuracy": probe_accuracy(probe, zt, yt), "val_accuracy": probe_accuracy(probe, zv, yv),
             "train_items": float(len(train)), "val_items": float(len(val))}
    log.info("bass-root probe: frame accuracy %.3f on its %d training items, %.3f on %d held-out items",
             stats["train_accuracy"], len(train), stats["val_accuracy"], len(val))
    return probe, stats


def save_probe(probe: BassRootProbe, path: Any, stats: dict[str, float]) -> None:
    torch.save({"spec": probe.spec(), "state": probe.state_dict(), "stats": stats}, path)


def load_probe(path: Any) -> BassRootProbe:
    state = torch.load(path, map_location="cpu", weights_only=True)
    probe = BassRootProbe(**state["spec"])
    probe.load_state_dict(state["state"])
    return probe.eval().requires_grad_(False)


# ---- the loss, read off the decoded audio (engine/diffusion/chroma.py) ----------------------------
def bass_chroma_loss(audio: Tensor, labels: Tensor, weights: Tensor, hop: int = HOP,
                     pool: str = "frame") -> tuple[Tensor, Tensor]:
    """:func:`chroma_share_loss` of the bass band on the root's pitch class: ``labels`` (n, F) the root per latent
    frame (-1: none)."""
    return chroma_share_loss(audio, root_targets(labels), weights, BASS_BAND, pool, hop)
