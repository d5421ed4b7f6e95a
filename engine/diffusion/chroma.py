"""Pitch-class shares of decoded audio: the loss the bass-root training uses and the guidance sampling uses.

:func:`chroma_share_loss` is minus the log share of a band's power (an STFT of 16384 points, hop 25 ms) on given
pitch classes: a chord's root for the bass, its tones for the instrument, the progression's collection for the
melody. ``engine.train.bass_root`` trains the U-Net with it (``--bass-root-weight``, ``--tonal-weight``);
``engine.diffusion.chroma_guidance`` nudges the sampler's data prediction with its gradient.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.config import HOP, SAMPLE_RATE

PITCH_CLASSES = 12
N_FFT = 16384  # 2.9 Hz bins, 0.34 s: a Hann main lobe (+-5.9 Hz) inside a semitone down to about 100 Hz
STFT_HOP = 1200  # 25 ms
BASS_BAND = (30.0, 300.0)  # engine.eval.key.BASS_RANGE
TONAL_BAND = (40.0, 2000.0)  # engine.eval.key.F_MIN / F_MAX: the key estimator's chroma band for every stem
POOLS = ("frame", "segment")


def pitch_class_matrix(n_fft: int = N_FFT, sr: int = SAMPLE_RATE, band: tuple[float, float] = BASS_BAND) -> Tensor:
    """(12, n_fft // 2 + 1) 0/1: which rfft bins of ``band`` fold to which pitch class (nearest MIDI note)."""
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sr, dtype=torch.float64)
    sel = (freqs >= band[0]) & (freqs <= band[1])
    out = torch.zeros(PITCH_CLASSES, freqs.numel())
    midi = torch.round(69 + 12 * torch.log2(freqs[sel] / 440.0)).long()
    out[midi % 12, torch.nonzero(sel).flatten()] = 1.0
    return out


_MATRICES: dict[tuple[float, float], Tensor] = {}


def _band_matrix(band: tuple[float, float]) -> Tensor:
    if band not in _MATRICES:
        _MATRICES[band] = pitch_class_matrix(band=band)
    return _MATRICES[band]


def chroma_share_loss(audio: Tensor, targets: Tensor, weights: Tensor, band: tuple[float, float] = BASS_BAND,
                      pool: str = "frame", hop: int = HOP) -> tuple[Tensor, Tensor]:
    """Minus the log share of ``band``'s power on the target pitch classes.

    ``audio`` (n, N) mono decoded audio; ``targets`` (n, 12, F) 0/1 per latent frame: the pitch classes asked for
    (a chord's root, its tones, ...; none: the frame is not scored); ``weights`` (n, F) per latent frame (the loss
    mask x sigma(t)^2). ``pool`` ``"frame"``: one term per STFT frame; ``"segment"``: the power of each run of
    STFT frames with the same targets (a chord segment), weighted by ``weights``, is summed before the share is
    taken, so a passing tone or an onset between held notes costs little as long as the segment as a whole sits
    on its targets; each segment counts with the sum of its frames' weights. Returns (sum of weight x loss, the
    number of scored STFT frames with a non-zero weight) so that a caller can pool over groups.

    Power, not the key estimator's magnitude: a tone's window leakage into the neighbouring semitones then costs
    little (a 110 Hz sine keeps 0.9 of the band on A, where magnitudes give it 0.38 and G# 0.29). Shares are
    floored by 1e-3 of the batch's mean band power per pitch class, so that a silent frame costs
    log(12 / number of targets) and not infinity."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    window = torch.hann_window(N_FFT, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, N_FFT, STFT_HOP, window=window, center=True, return_complex=True)
    spec = spec.abs().square()  # (n, bins, T) power
    chroma = torch.einsum("cb,nbt->nct", _band_matrix(band).to(audio.device, audio.dtype), spec)  # (n, 12, T)
    frame = (torch.arange(chroma.shape[-1], device=audio.device) * STFT_HOP // hop).clamp_max(targets.shape[-1] - 1)
    tgt = targets[:, :, frame].to(audio.dtype)  # (n, 12, T) at each STFT frame's centre
    known = tgt.sum(dim=1) > 0
    w = weights[:, frame].to(audio.dtype) * known.to(audio.dtype)
    scored = (known & (weights[:, frame] > 0)).sum().to(audio.dtype)
    if pool == "frame":
        floor = 1e-3 * chroma.detach().mean().clamp_min(1e-8)
        on = (chroma * tgt).sum(dim=1) + tgt.sum(dim=1) * floor
        nll = -torch.log(on.clamp_min(1e-12) / (chroma.sum(dim=1) + PITCH_CLASSES * floor))
        return (torch.where(known, nll, 0.0) * w).sum(), scored
    n, _, T = chroma.shape
    change = torch.zeros(n, T, dtype=torch.long, device=audio.device)
    change[:, 1:] = (tgt[:, :, 1:] != tgt[:, :, :-1]).any(dim=1).long()
    seg = change.cumsum(dim=1)  # (n, T) segment index per STFT frame
    S = int(seg.max()) + 1
    idx = seg[:, :, None].expand(n, T, PITCH_CLASSES)
    pooled = chroma.new_zeros(n, S, PITCH_CLASSES).scatter_add(1, idx, (chroma * w[:, None]).transpose(1, 2))
    seg_tgt = tgt.new_zeros(n, S, PITCH_CLASSES).scatter_reduce(1, idx, tgt.transpose(1, 2), "amax",
                                                                include_self=False)
    seg_w = w.new_zeros(n, S).scatter_add(1, seg, w)
    live = seg_w > 0
    floor = 1e-3 * (pooled.detach()[live].mean() if live.any() else pooled.new_ones(())).clamp_min(1e-8)
    on = (pooled * seg_tgt).sum(dim=-1) + seg_tgt.sum(dim=-1) * floor
    nll = -torch.log(on.clamp_min(1e-12) / (pooled.sum(dim=-1) + PITCH_CLASSES * floor))
    return (torch.where(live, nll, 0.0) * seg_w).sum(), scored


def root_targets(labels: Tensor) -> Tensor:
    """(n, F) roots (-1: none) -> (n, 12, F) one-hot targets (all zero where none)."""
    known = labels >= 0
    return F.one_hot(labels.clamp_min(0), PITCH_CLASSES).transpose(1, 2) * known[:, None].to(torch.long)


def scale_targets(tones: Tensor, collection: tuple[int, ...] | None = None) -> Tensor:
    """(n, 12, F) the chord tones per frame -> on the frames with a chord, ``collection`` (pitch classes, e.g. the
    scale of the prompt's key) or, without one, the union of the crop's chord tones: a melody's notes belong to
    the key, not to the sounding chord alone. The union leaves out the scale tones no chord of the crop sounds
    (over I-IV in C, the B that tells C major from F major)."""
    known = (tones.sum(dim=1, keepdim=True) > 0).to(tones.dtype)
    if collection is None:
        return tones.amax(dim=-1, keepdim=True).expand_as(tones) * known
    on = torch.zeros(PITCH_CLASSES, 1, dtype=tones.dtype, device=tones.device)
    on[list(collection)] = 1.0
    return on * known


def chord_roots(track: Tensor) -> Tensor:
    """(..., 24, F) chord track (:func:`engine.text.chords.chord_features`) -> (..., F) int64: the root per frame
    (its rows 12-23 are the root's one-hot), -1 where the track is empty (no chord, or chords not given)."""
    roots = track[..., 12:, :]
    return torch.where(roots.sum(dim=-2) > 0, roots.argmax(dim=-2), -1)


def mono_decoder(model: Any) -> Callable[[Tensor, int], Tensor]:
    """``decode(z, samples)``: whitened (n, D, F) latents -> (n, samples) mono audio through ``model``'s autoencoder
    (differentiable in ``z``; the caller freezes the weights), in float32."""
    ae, whitening = model.autoencoder, model.whitening

    def decode(z: Tensor, samples: int) -> Tensor:
        p = next(ae.parameters())
        return ae.decode(whitening.unwhiten(z.to(p.device, p.dtype)), samples).float().mean(dim=1)

    return decode
