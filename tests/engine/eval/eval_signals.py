"""Synthetic test signals with known tempo, key and role (shared by the eval tests)."""

from __future__ import annotations

import numpy as np

SR = 48_000


def drum_loop(bpm: float, seconds: float = 8.0, phase: float = 0.1, seed: int = 0) -> np.ndarray:
    """(2, N): kick on beats 1/3, snare on 2/4, hats on eighths, starting at ``phase`` seconds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    t = np.arange(int(0.15 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
    snare = rng.standard_normal(t.size) * np.exp(-t * 30) * 0.5
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t * 120) * 0.15

    def put(s: float, sig: np.ndarray) -> None:
        i = int(round(s * SR))
        if 0 <= i < n:
            m = min(sig.size, n - i)
            x[i:i + m] += sig[:m]

    beat = 60.0 / bpm
    b, k = phase, 0
    while b < seconds:
        put(b, kick if k % 2 == 0 else snare)
        put(b, hat)
        put(b + beat / 2, hat)
        b += beat
        k += 1
    x += 1e-3 * rng.standard_normal(n)
    return np.stack([x, x]).astype(np.float32)


def tone(midi: int, seconds: float, amp: float = 0.2, decay: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return amp * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * np.exp(-t * decay)


MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def tonal_stems(tonic: int, mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bass, chords, melody) mono arrays of a 4-chord progression in the key (I-IV-V-I / i-VI-iv-V)."""
    scale = MAJOR if mode == "major" else MINOR
    prog = (0, 3, 4, 0) if mode == "major" else (0, 5, 3, 4)
    rng = np.random.default_rng(seed)
    bass, chords, mel = [], [], []
    for d in prog:
        bass.append(tone(36 + tonic + scale[d], 1.0, 0.4))
        chords.append(sum(tone(60 + tonic + scale[(d + i) % 7] + 12 * ((d + i) // 7), 1.0, 0.1) for i in (0, 2, 4)))
        mel.append(np.concatenate([tone(72 + tonic + scale[int(rng.choice([0, 2, 4, 1]))], 0.25) for _ in range(4)]))
    return np.concatenate(bass), np.concatenate(chords), np.concatenate(mel)


def bass_on_grid(bpm: float, seconds: float, phase: float, offset_s: float = 0.0) -> np.ndarray:
    """(2, N) plucked bass notes on eighth notes from ``phase`` (+ ``offset_s``)."""
    n = int(seconds * SR)
    x = np.zeros(n)
    note = tone(40, 0.2, 0.5, decay=15.0)
    step = 60.0 / bpm / 2
    s = phase + offset_s
    while s < seconds:
        i = int(round(s * SR))
        m = min(note.size, n - i)
        if m > 0:
            x[i:i + m] += note[:m]
        s += step
    return np.stack([x, x]).astype(np.float32)
