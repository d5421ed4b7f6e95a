"""Does the autoencoder keep pitch? Harmonic test tones through encode -> decode, pitch class in and out.

    python scripts/ae_pitch_probe.py MODEL_DIR

Per stem role, every semitone of a register (bass MIDI 28-52, instrument 48-72, melody 60-84): a 2 s tone of five
harmonics (amplitudes 1/h, slow decay) on that stem alone, through the model's autoencoder (and whitening); a note
counts when the strongest pitch class of the reconstruction's chroma (``engine.eval.key.chroma``, the key
estimator's) is the note's own, as it is for the input. Prints hits per role and the frequencies the reconstruction
put its peak at for a few notes.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from engine.config import SAMPLE_RATE
from engine.eval import key as keyest
from engine.model import StemforgeModel

REGISTERS = {"bass": (28, 52), "instrument": (48, 72), "melody": (60, 84)}
SECONDS = 2.0


def tone(midi: int) -> np.ndarray:
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    f = 440.0 * 2 ** ((midi - 69) / 12)
    x = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 6)) * 0.2 * np.exp(-0.5 * t)
    return np.stack([x, x]).astype(np.float32)


def peak_hz(audio: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(audio.mean(axis=0) * np.hanning(audio.shape[1])))
    return float(np.argmax(spec) * SAMPLE_RATE / audio.shape[1])


def main(model_dir: str) -> None:
    torch.set_num_threads(1)
    model = StemforgeModel.load(model_dir)
    stems = tuple(model.config.stems)
    for role, (lo, hi) in REGISTERS.items():
        if role not in stems:
            continue
        idx, hits, examples = stems.index(role), 0, []
        for midi in range(lo, hi + 1):
            a = tone(midi)
            batch = np.zeros((1, len(stems), 2, a.shape[1]), np.float32)
            batch[0, idx] = a
            with torch.inference_mode():
                z = model.encode_stems(torch.from_numpy(batch))
                rec = model.decode_stems(z, a.shape[1])[0, idx].float().numpy()
            ok = int(np.argmax(keyest.chroma(rec)) == np.argmax(keyest.chroma(a)) == midi % 12)
            hits += ok
            if midi % 6 == 0:
                examples.append(f"MIDI {midi} ({440 * 2 ** ((midi - 69) / 12):.1f} Hz) -> peak {peak_hz(rec):.1f} Hz")
        print(f"{role:<11} pitch class kept for {hits}/{hi - lo + 1} notes (MIDI {lo}-{hi}); " + "; ".join(examples))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
