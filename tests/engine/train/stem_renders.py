"""Tiny synthetic render folders (bass/drums/instrument/melody/mix WAVs) for the training tests."""

import numpy as np
import soundfile as sf

SR = 48_000


def write_item(folder, seed: int, seconds: float = 0.5) -> None:
    """Decaying tones per stem (stereo, PCM_24) and their sum as mix.wav, in ``folder``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    folder.mkdir(parents=True)
    stems = {}
    for i, role in enumerate(["bass", "drums", "instrument", "melody"]):
        f0 = 55.0 * 2 ** (i + rng.random())
        tone = 0.2 * np.sin(2 * np.pi * f0 * t) * np.exp(-3 * (t % 0.25))
        stems[role] = np.stack([tone, 0.8 * tone]).astype(np.float32)
        sf.write(folder / f"{role}.wav", stems[role].T, SR, subtype="PCM_24")
    sf.write(folder / "mix.wav", sum(stems.values()).T, SR, subtype="PCM_24")
