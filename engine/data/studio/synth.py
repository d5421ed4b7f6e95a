"""Pure-numpy synthesiser: the fallback renderer when FluidSynth or the GM soundfont is absent.

Additive oscillators with envelopes for pitched GM families and noise/sine-sweep drums. Crude next
to real samples, but deterministic (all noise from the item's generator) and dependency-free.
"""

from __future__ import annotations

import numpy as np

from engine.data.studio import styles as S
from engine.data.studio.arrange import Part

_NYQUIST_GUARD = 16_000.0


def _family(program: int) -> str:
    if 32 <= program <= 39:
        return "bass"
    if program <= 7:
        return "keys"
    if program <= 15:
        return "bell"
    if program <= 23:
        return "organ"
    if program <= 31:
        return "guitar"
    if 40 <= program <= 55 or 88 <= program <= 95:
        return "pad"
    if 80 <= program <= 87:
        return "lead"
    if 56 <= program <= 79:
        return "wind"
    return "pluck"


# harmonic amplitudes, amplitude decay (1/s), attack (s), release (s), vibrato depth (semitones)
_FAMILIES: dict[str, tuple[tuple[float, ...], float, float, float, float]] = {
    "bass": ((1.0, 0.45, 0.2, 0.1), 2.5, 0.004, 0.04, 0.0),
    "keys": ((1.0, 0.5, 0.3, 0.18, 0.1, 0.06), 2.2, 0.003, 0.15, 0.0),
    "bell": ((1.0, 0.0, 0.35, 0.0, 0.2, 0.0, 0.1), 4.0, 0.001, 0.3, 0.0),
    "organ": ((1.0, 0.7, 0.5, 0.0, 0.3, 0.0, 0.0, 0.25), 0.0, 0.01, 0.05, 0.0),
    "guitar": ((1.0, 0.6, 0.45, 0.3, 0.2, 0.12, 0.08), 3.0, 0.002, 0.06, 0.0),
    "pad": (tuple(1.0 / k for k in range(1, 9)), 0.0, 0.12, 0.3, 0.05),
    "lead": ((1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14, 0.0, 0.11), 0.3, 0.01, 0.06, 0.15),
    "wind": ((1.0, 0.6, 0.4, 0.25, 0.15, 0.1), 0.2, 0.04, 0.08, 0.2),
    "pluck": ((1.0, 0.5, 0.25, 0.12), 4.0, 0.002, 0.1, 0.0),
}


def _tone(freq: float, gate_s: float, sr: int, program: int) -> np.ndarray:
    amps, decay, attack, release, vib = _FAMILIES[_family(program)]
    n = int((gate_s + release) * sr) + 1
    t = np.arange(n) / sr
    phase_mod = 1.0
    if vib:
        phase_mod = 2.0 ** (vib / 12.0 * np.sin(2 * np.pi * 5.0 * t) * np.minimum(t / 0.3, 1.0))
    inst_f = freq * phase_mod
    phase = 2 * np.pi * np.cumsum(inst_f) / sr
    wave = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if a and k * freq < _NYQUIST_GUARD:
            wave += a * np.sin(k * phase) * (np.exp(-decay * (k ** 0.5) * t) if decay else 1.0)
    env = np.minimum(t / max(attack, 1e-4), 1.0)
    rel = np.clip((gate_s + release - t) / release, 0.0, 1.0)
    env = env * np.where(t < gate_s, 1.0, rel)
    wave *= env / max(sum(amps), 1.0)
    if _family(program) == "guitar" and program in (29, 30):
        wave = np.tanh(4.0 * wave) * 0.5
    return wave


def _drum(key: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if key in (S.KICK, 35):
        n = int(0.35 * sr)
        t = np.arange(n) / sr
        f = 45.0 + 90.0 * np.exp(-t * 30.0)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 9.0)
    if key in (S.SNARE, 40, S.CLAP, S.SIDE_STICK):
        length = 0.06 if key == S.SIDE_STICK else 0.22
        n = int(length * sr)
        t = np.arange(n) / sr
        noise = rng.standard_normal(n) * np.exp(-t * (22.0 if key != S.CLAP else 30.0))
        body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t * 25.0)
        return 0.5 * noise + (0.6 * body if key != S.CLAP else 0.0)
    if key in (S.CLOSED_HAT, S.PEDAL_HAT, S.OPEN_HAT, S.SHAKER, S.TAMBOURINE):
        length = 0.35 if key == S.OPEN_HAT else 0.06
        n = int(length * sr)
        t = np.arange(n) / sr
        noise = np.diff(rng.standard_normal(n + 1))  # crude high-pass
        return 0.25 * noise * np.exp(-t * (8.0 if key == S.OPEN_HAT else 60.0))
    if key in (S.CRASH, S.RIDE, S.RIDE_BELL, 57, 52, 55, 59):
        length = 1.2 if key == S.CRASH else 0.5
        n = int(length * sr)
        t = np.arange(n) / sr
        noise = np.diff(rng.standard_normal(n + 1))
        metal = sum(np.sin(2 * np.pi * f * t) for f in (3150.0, 4270.0, 5340.0)) / 3
        decay = 3.0 if key == S.CRASH else 9.0
        return (0.18 * noise + 0.12 * metal) * np.exp(-t * decay)
    # toms and everything else: a pitched sweep
    base = {S.LOW_TOM: 95.0, S.MID_TOM: 125.0, S.HIGH_TOM: 160.0}.get(key, 110.0 + 3.0 * (key - 40))
    n = int(0.3 * sr)
    t = np.arange(n) / sr
    f = base * (1.0 + 0.5 * np.exp(-t * 20.0))
    return 0.8 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 10.0)


_PAN = {"bass": 0.0, "drums": 0.0, "instrument": -0.35, "melody": 0.3}


def render_part(part: Part, bpm: float, num_frames: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render ``part`` to float32 (2, num_frames); notes past the end are cut."""
    beat_s = 60.0 / bpm
    tail = 2 * sr
    mono = np.zeros(num_frames + tail)
    for note in part.notes:
        start = int(round(note.start * beat_s * sr))
        if start >= num_frames:
            continue
        if part.channel == 9:
            wave = _drum(note.pitch, sr, rng)
        else:
            freq = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
            wave = _tone(freq, min(note.dur * beat_s, 2.0), sr, part.program)
        wave = wave[: mono.shape[0] - start] * (note.velocity / 127.0) ** 1.5
        mono[start:start + wave.shape[0]] += wave
    mono = mono[:num_frames]
    pan = _PAN.get(part.stem, 0.0)
    theta = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)]).astype(np.float32)
