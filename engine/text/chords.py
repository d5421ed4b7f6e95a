"""Chords: a per-frame harmony track for the U-Net, read from chord symbols or planned from the prompt.

The key the prompt names reaches the U-Net as one global embedding (:mod:`engine.text.attributes`); a small
U-Net learned the key's notes from it but not where the harmony settles (the tonic: C major and A minor share
their notes, see ``docs/MODEL_CARD.md``). Mustango (Melechovsky et al. 2023) conditions its diffusion model on
chords and beats for the same reason, with a "music knowledge" module that predicts them from the caption at
inference. Stemforge does the same with what it knows: a chord track, per latent frame the chord's tones (12
pitch-class bits) and its root (12 bits), follows the tempo grid of the beat clock and is added at every U-Net
level by a zero-initialised projection (:class:`engine.models.unet.ChordTrack`).

Where the chords come from:

- a producer's chord symbols, ``parse_chords("Am F C G")`` (one chord a bar unless ``beats_per_chord`` says
  otherwise; ``-`` or ``N`` for a bar without harmony);
- otherwise, for a generation from a prompt naming a key, :func:`plan_chords` draws one of the studio's
  progressions for the prompt's genre (``engine.data.studio.theory.PROGRESSIONS``) and mode in that key,
  deterministically from the request's seed;
- in training, the chords the studio rendered (:func:`engine.data.studio.render.item_harmony`).

    plan_chords("funk at 100 bpm in E minor", seed=3).names()  -> ['E min7', 'E min7', 'A min7', 'A min7']
    parse_chords("Am7 D7 Gmaj7 -").names()                     -> ['A min7', 'D 7', 'G maj7', '-']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from engine.data.studio.arrange import BEATS_PER_BAR
from engine.data.studio.theory import NOTE_NAMES, pitch_class
from protocol.errors import InvalidArgument

CHORD_FEATURES = 24  # 12 chord-tone bits + 12 root bits per frame
MAX_CHORDS = 64
QUALITIES: dict[str, tuple[int, ...]] = {  # intervals above the root
    "": (0, 4, 7), "maj": (0, 4, 7), "M": (0, 4, 7), "m": (0, 3, 7), "min": (0, 3, 7), "-": (0, 3, 7),
    "dim": (0, 3, 6), "aug": (0, 4, 8), "+": (0, 4, 8), "sus2": (0, 2, 7), "sus4": (0, 5, 7), "sus": (0, 5, 7),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "M7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "min7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10), "dim7": (0, 3, 6, 9), "6": (0, 4, 7, 9), "m6": (0, 3, 7, 9),
}
_QUALITY_NAMES = {(0, 4, 7): "", (0, 3, 7): " min", (0, 3, 6): " dim", (0, 4, 8): " aug", (0, 2, 7): " sus2",
                  (0, 5, 7): " sus4", (0, 4, 7, 10): " 7", (0, 4, 7, 11): " maj7", (0, 3, 7, 10): " min7",
                  (0, 3, 6, 10): " m7b5", (0, 3, 6, 9): " dim7", (0, 4, 7, 9): " 6", (0, 3, 7, 9): " m6"}
_SYMBOL = re.compile(r"([A-Ga-g])([#b♯♭]?)(.*)")
# genre words in a prompt -> studio style (longest first: "pop ballad" before "pop")
_GENRE_WORDS = (("drum and bass", "drum and bass"), ("drum & bass", "drum and bass"), ("dnb", "drum and bass"),
                ("jungle", "drum and bass"), ("pop ballad", "pop ballad"), ("ballad", "pop ballad"),
                ("jazz swing", "jazz swing"), ("swing jazz", "jazz swing"), ("jazz", "jazz swing"),
                ("swing", "jazz swing"), ("hip hop", "hip hop"), ("hip-hop", "hip hop"), ("hiphop", "hip hop"),
                ("boom bap", "hip hop"), ("trap", "hip hop"), ("lo-fi", "lo-fi"), ("lofi", "lo-fi"),
                ("lo fi", "lo-fi"), ("house", "house"), ("techno", "techno"), ("reggae", "reggae"),
                ("dub", "reggae"), ("funk", "funk"), ("disco", "funk"), ("rock", "rock"), ("punk", "rock"),
                ("pop", "pop"))


@dataclass(frozen=True)
class Harmony:
    """A cyclic chord sequence on the tempo grid: ``chords[i]`` the pitch classes of chord ``i`` (root first;
    empty: no harmony there), each lasting ``beats_per_chord`` beats from the grid's downbeat at 0 s."""

    chords: tuple[tuple[int, ...], ...]
    beats_per_chord: float = float(BEATS_PER_BAR)

    def __post_init__(self) -> None:
        if not self.chords or len(self.chords) > MAX_CHORDS:
            raise InvalidArgument(f"chords: give 1..{MAX_CHORDS} chords, got {len(self.chords)}")
        if not (math.isfinite(self.beats_per_chord) and 0.25 <= self.beats_per_chord <= 64):
            raise InvalidArgument(f"beats per chord must be in 0.25..64, got {self.beats_per_chord}")
        if any(not 0 <= pc < 12 for c in self.chords for pc in c):
            raise InvalidArgument("chord pitch classes must be in 0..11")

    def names(self) -> list[str]:
        out = []
        for c in self.chords:
            if not c:
                out.append("-")
                continue
            ivs = tuple(sorted((pc - c[0]) % 12 for pc in c))
            other = " (" + " ".join(NOTE_NAMES[p] for p in c[1:]) + ")"
            out.append(NOTE_NAMES[c[0]] + _QUALITY_NAMES.get(ivs, other))
        return out

    def to_dict(self) -> dict:
        return {"chords": self.names(), "pitch_classes": [list(c) for c in self.chords],
                "beats_per_chord": self.beats_per_chord}


def parse_chord(symbol: str) -> tuple[int, ...]:
    """``"Am7"`` -> (9, 0, 4, 7); ``"Bb"`` -> (10, 2, 5); ``"-"`` / ``"N"`` -> () (no harmony)."""
    s = symbol.strip()
    if s in ("-", "N", "N.C.", "NC", "x"):
        return ()
    m = _SYMBOL.fullmatch(s)
    if not m or m.group(3) not in QUALITIES:
        raise InvalidArgument(f"cannot read chord {symbol!r} (e.g. 'Am', 'F#m7', 'Bbmaj7', 'G7', 'Cdim', '-')",
                              chord=symbol)
    root = pitch_class(m.group(1) + m.group(2).replace("♯", "#").replace("♭", "b"))
    return tuple((root + iv) % 12 for iv in QUALITIES[m.group(3)])


def parse_chords(text: str, beats_per_chord: float = float(BEATS_PER_BAR)) -> Harmony:
    """Chord symbols separated by spaces, commas or bars (``"Am F C G"``, ``"Am | F | C | G"``)."""
    symbols = [s for s in re.split(r"[\s,|]+", text or "") if s]
    if not symbols:
        raise InvalidArgument("chords: no chord symbols given (e.g. 'Am F C G')")
    return Harmony(tuple(parse_chord(s) for s in symbols), float(beats_per_chord))


def genre_of(prompt: str) -> str | None:
    """The studio style a prompt names first (``"Moody funk in C minor"`` -> ``"funk"``; "lo-fi ... a jazz kit"
    -> ``"lo-fi"``), or None."""
    text = re.sub(r"\s+", " ", (prompt or "").lower())
    best: tuple[int, int, str] | None = None  # (position, -length, style): the earliest, then the longest
    for word, style in _GENRE_WORDS:
        m = re.search(r"(?<![a-z])" + re.escape(word) + r"(?![a-z])", text)
        if m and (best is None or (m.start(), -len(word)) < best[:2]):
            best = (m.start(), -len(word), style)
    return best[2] if best else None


def tonic_first(degrees: tuple[int, ...]) -> tuple[int, ...]:
    """The progression turned to begin on its first tonic chord (degree 0): ``(5, 3, 0, 4)`` -> ``(0, 4, 5, 3)``;
    unchanged without one."""
    return degrees[degrees.index(0):] + degrees[:degrees.index(0)] if 0 in degrees else degrees


def prompt_key(prompt: str):
    """The key ``prompt`` names as an ``engine.data.studio.theory.Key`` (``"... in E minor"`` -> E aeolian), or
    None when it names none."""
    from engine.data.studio.theory import Key
    from engine.text.attributes import parse_key

    key_class = parse_key(prompt)
    return None if key_class is None else Key(key_class % 12, "minor" if key_class >= 12 else "major")


def plan_chords(prompt: str, seed: int) -> Harmony | None:
    """A progression for ``prompt``'s key (None without a key): one of the studio's progressions for its genre
    (all genres' when it names none) and mode, one chord a bar, drawn from ``seed``, that states the key: it
    begins on the tonic chord (:func:`tonic_first`; progressions without one are drawn only when the genre has
    no other). A clip that opens on vi-IV-I-V in C major is heard in A minor: the first bar and its bass set the
    tonic for a listener, and for the key estimator (``engine.eval.key``)."""
    from engine.data.studio import styles
    from engine.data.studio.theory import PROGRESSIONS

    key = prompt_key(prompt)
    if key is None:
        return None
    mode = key.mode
    genre = genre_of(prompt)
    if genre is not None:
        style = styles.STYLES[genre]
        pool, size = list(PROGRESSIONS[style.progressions][mode]), style.chord_size
    else:
        pool = [p for table in sorted(PROGRESSIONS) for p in PROGRESSIONS[table][mode]]
        size = 3
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC40D])
    pool = [p for p in pool if 0 in p] or pool  # the progressions that reach the tonic
    degrees = tonic_first(pool[int(rng.integers(len(pool)))])
    return Harmony(tuple(key.chord(d, size).pcs for d in degrees), float(BEATS_PER_BAR))


def chord_features(harmony: Harmony | None, bpm: float | None, grid_offset: float, frames: int,
                   frame_seconds: float) -> Tensor:
    """(24, frames) float32: per frame the sounding chord's tones (rows 0-11) and root (rows 12-23); zeros
    without harmony or tempo. Frame ``f`` lies ``(grid_offset + f * frame_seconds) * bpm / 60`` beats after the
    grid's downbeat, the beat clock's convention."""
    out = torch.zeros(CHORD_FEATURES, frames)
    if harmony is None or bpm is None or not math.isfinite(bpm) or bpm <= 0 or frames < 1:
        return out
    beats = (float(grid_offset) + np.arange(frames, dtype=np.float64) * frame_seconds) * float(bpm) / 60.0
    slot = np.floor(beats / harmony.beats_per_chord + 1e-9).astype(np.int64) % len(harmony.chords)
    table = torch.zeros(len(harmony.chords), CHORD_FEATURES)
    for i, c in enumerate(harmony.chords):
        if c:
            table[i, list(c)] = 1.0
            table[i, 12 + c[0]] = 1.0
    return table[torch.from_numpy(slot)].T.contiguous()
