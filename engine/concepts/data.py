"""Concept training data: reference audio -> checks -> clips -> whitened latents (once) + neutral captions.

The reference audio of a concept (a couple of minutes of one sound, DreamStyler sec. 5.1) is treated as one stem of
the model (``melody`` by default: the held-out GM programs of the studio play the melody stem). It must hold at
least :data:`MIN_REFERENCE_SECONDS` of non-silent audio. It is cut into clips of ``clip_seconds`` (the model's
training segment length), silent clips are dropped, and each clip is encoded once by the frozen autoencoder and the
whitening into a ``(k, D, F)`` latent whose other stems are absent (they stay free at ``t = T`` in training).

Captions are neutral, as in textual inversion for music ("A recording of a S*", Thomé et al. sec. 2):
:data:`NEUTRAL_TEMPLATES` filled with the concept's identifier tokens (pivotal: in order, the tokens first, as
DreamStyler's ``concat(V*, y)``; textual inversion: shuffled in every caption), plus the producer's description.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.audio import check_finite, load_audio, to_stereo
from engine.config import HOP, SAMPLE_RATE
from protocol.errors import ConceptError, InvalidAudio, SilentAudio

log = logging.getLogger(__name__)

MIN_REFERENCE_SECONDS = 10.0  # of non-silent audio per concept
SILENCE_DBFS = -60.0  # a 50 ms frame below this RMS counts as silence
FRAME_SECONDS = 0.05
NEUTRAL_TEMPLATES = (
    "a recording of a {}",
    "the sound of {}",
    "a short piece of {} music",
    "a clip of {}",
    "{} playing",
    "a solo {} performance",
    "music with {}",
    "a track featuring {}",
)
PIVOTAL_CONTEXTS = ("a short piece of music", "a recording", "a music clip", "an instrumental recording",
                    "a solo performance", "a musical phrase")  # y in DreamStyler's concat(V*, y)


@dataclass
class Reference:
    """The reference audio of one concept, validated."""

    name: str
    audio: list[np.ndarray]  # float32 (2, N) at 48 kHz each
    sha256: str  # of the decoded float32 PCM of all files, in order
    active_seconds: float
    sources: list[str]


def _active_seconds(audio: np.ndarray) -> float:
    frame = int(FRAME_SECONDS * SAMPLE_RATE)
    mono = audio.mean(axis=0)
    n = mono.size // frame
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(mono[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-30)
    return float(np.sum(20 * np.log10(rms) > SILENCE_DBFS) * FRAME_SECONDS)


def load_reference(name: str, sources: Sequence[str | Path | np.ndarray],
                   min_seconds: float = MIN_REFERENCE_SECONDS) -> Reference:
    """Load (files, or (2, N) 48 kHz arrays) and validate the reference audio of concept ``name``.

    Raises :class:`InvalidAudio` (unreadable), :class:`SilentAudio` (a silent file) or :class:`ConceptError`
    (less than ``min_seconds`` of sound in total).
    """
    if not sources:
        raise ConceptError(f"concept {name!r}: no reference audio given", concept=name)
    audios, labels = [], []
    digest = hashlib.sha256()
    active = 0.0
    for i, src in enumerate(sources):
        if isinstance(src, np.ndarray):
            audio, label = to_stereo(np.asarray(src, dtype=np.float32)), f"array {i}"
            check_finite(audio, label)
        else:
            audio, label = load_audio(src), str(src)
        if audio.shape[1] == 0:
            raise InvalidAudio(f"reference {label} is empty", path=label)
        seconds = _active_seconds(audio)
        if seconds == 0.0:
            raise SilentAudio(f"reference {label} is silent (every 50 ms frame below {SILENCE_DBFS:g} dBFS)",
                              path=label)
        active += seconds
        digest.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        audios.append(audio)
        labels.append(label)
    if active < min_seconds:
        raise ConceptError(f"concept {name!r}: {active:.1f} s of non-silent reference audio, at least "
                           f"{min_seconds:g} s are needed (about two minutes work best)", concept=name,
                           seconds=round(active, 2), minimum=min_seconds)
    return Reference(name=name, audio=audios, sha256=digest.hexdigest(), active_seconds=active, sources=labels)


def cut_clips(audios: Sequence[np.ndarray], clip_samples: int) -> list[np.ndarray]:
    """Non-overlapping ``clip_samples`` windows of every file (a tail of at least half a clip becomes one more
    window ending at the file's end; shorter files are zero-padded); windows that are mostly silent are dropped."""
    clips: list[np.ndarray] = []
    for audio in audios:
        n = audio.shape[1]
        if n < clip_samples:
            starts, audio = [0], np.pad(audio, ((0, 0), (0, clip_samples - n)))
        else:
            starts = list(range(0, n - clip_samples + 1, clip_samples))
            if n - (starts[-1] + clip_samples) >= clip_samples // 2:
                starts.append(n - clip_samples)
        for s in starts:
            clip = audio[:, s:s + clip_samples]
            if _active_seconds(clip) >= 0.5 * clip_samples / SAMPLE_RATE:
                clips.append(np.ascontiguousarray(clip))
    return clips


@torch.no_grad()
def encode_clips(model: Any, clips: Sequence[np.ndarray], stem: str, captions_id: str, batch: int = 4) -> Any:
    """Whitened latents of the clips as a :class:`engine.train.diffusion.LatentSet` (only ``stem`` present)."""
    from engine.train.diffusion import LatentSet

    stems = tuple(model.config.stems)
    if stem not in stems:
        from protocol.errors import UnknownStem

        raise UnknownStem(f"unknown stem {stem!r}; stems: {', '.join(stems)}", stem=stem)
    if not clips:
        raise ConceptError(f"concept {captions_id!r}: no non-silent clip in the reference audio")
    k, s = len(stems), stems.index(stem)
    ae = next(model.autoencoder.parameters())
    latents = []
    for i in range(0, len(clips), batch):
        x = torch.from_numpy(np.stack(clips[i:i + batch])).to(ae.device, ae.dtype)  # (b, 2, N)
        zw = model.whitening.whiten(model.autoencoder.encode(x)).float().cpu()  # (b, D, F)
        for z in zw:
            full = torch.zeros(k, z.shape[0], z.shape[1])
            full[s] = z
            latents.append(full)
    present = torch.zeros(len(latents), k, dtype=torch.bool)
    present[:, s] = True
    ids = [f"{captions_id}:{i}" for i in range(len(latents))]
    return LatentSet(latents, present, [captions_id] * len(latents), ids)


def clip_samples_for(model: Any, seconds: float | None = None) -> int:
    """Clip length in samples: ``seconds`` (default: the model's training segment), whole latent frames."""
    secs = float(seconds if seconds is not None else model.config.segment_seconds)
    return max(1, int(round(secs * SAMPLE_RATE / HOP))) * HOP


def make_caption(tokens: Sequence[str], method: str, description: str, rng: random.Random) -> str:
    """A neutral caption with the concept's tokens (see the module docstring)."""
    toks = list(tokens)
    if method == "textual-inversion":
        rng.shuffle(toks)
        text = rng.choice(NEUTRAL_TEMPLATES).format(" ".join(toks))
    else:  # DreamStyler: concat(V*, y)
        text = " ".join(toks) + " " + rng.choice(PIVOTAL_CONTEXTS)
    return f"{text}, {description.strip()}" if description and description.strip() else text
