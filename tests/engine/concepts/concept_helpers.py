"""Synthetic reference audio for the concept tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import numpy as np

SR = 48_000


def tone(seconds: float, freq: float, seed: int = 0) -> np.ndarray:
    """(2, N) plucked tone pattern with a little noise: 8 notes a second, never silent for long."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = np.exp(-(t % 0.125) * 20.0)
    x = 0.3 * np.sin(2 * np.pi * freq * t) * env + 0.01 * rng.standard_normal(t.size)
    return np.stack([x, x]).astype(np.float32)
