#!/usr/bin/env python3
"""Per-stem spectral statistics of a stem folder (bass/drums/instrument/melody .wav), for a quick look at whether
generated stems differ by role:  .venv/bin/python scripts/stem_stats.py FOLDER [FOLDER ...]

Prints per stem: RMS, spectral centroid (Hz), share of the energy under 200 Hz, spectral flatness (geometric over
arithmetic mean of the power spectrum) and the envelope's variation (std / mean of 10 ms mean-abs frames).
"""

from __future__ import annotations

import sys

import numpy as np
import soundfile as sf

STEMS = ("bass", "drums", "instrument", "melody")


def stem_stats(path: str) -> dict[str, float]:
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    power = np.abs(np.fft.rfft(x)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    hop = sr // 100
    env = np.abs(x[: len(x) // hop * hop]).reshape(-1, hop).mean(axis=1)
    return {"rms": float(np.sqrt(np.mean(x ** 2))), "centroid_hz": float((power * freqs).sum() / power.sum()),
            "low_share": float(power[freqs < 200].sum() / power.sum()),
            "flatness": float(np.exp(np.mean(np.log(power))) / np.mean(power)),
            "env_variation": float(env.std() / max(env.mean(), 1e-12))}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[1].strip(), file=sys.stderr)
        return 2
    for folder in argv:
        print(folder)
        for stem in STEMS:
            s = stem_stats(f"{folder}/{stem}.wav")
            print(f"  {stem:10s} rms {s['rms']:.4f}  centroid {s['centroid_hz']:6.0f} Hz  under 200 Hz "
                  f"{s['low_share']:.2f}  flatness {s['flatness']:.4f}  envelope variation {s['env_variation']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
