"""Does the autoencoder keep pitch? Harmonic test tones through encode -> decode, pitch class in and out.

    python scripts/ae_pitch_probe.py MODEL_DIR      # a model checkpoint (autoencoder + whitening)
    python scripts/ae_pitch_probe.py AE_DIR         # an autoencoder run folder or export (no U-Net)
    python scripts/ae_pitch_probe.py DIR HELDOUT [N]  # also: key of the reconstructed real stems, first N items

Per stem role, every semitone of a register (bass MIDI 28-52, instrument 48-72, melody 60-84): a 2 s tone of five
harmonics (amplitudes 1/h, slow decay) on that stem alone, through the model's autoencoder (and whitening); a note
counts when the strongest pitch class of the reconstruction's chroma (``engine.eval.key.chroma``, the key
estimator's) is the note's own, as it is for the input. Prints hits per role and the frequencies the reconstruction
put its peak at for a few notes, and how much the latent of a held tone moves from frame to frame (without motion
a decoder can only place coherent energy at multiples of the 150 Hz frame rate). With a held-out render folder, the key estimator of ``stemforge eval`` runs on
the reconstructions of the real bass, instrument and melody stems (the evaluation's ``ae_key_adherence``, on
whole files) and on the stems themselves, and for an autoencoder with a tonal path, its frequency error.
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


class _BareAutoencoder:
    """The probe's view of an autoencoder without a model: every stem through the same encoder and decoder."""

    def __init__(self, path: str) -> None:
        from engine.config import get_config
        from engine.train.autoencoder import load_trained

        self.ae = load_trained(path)
        self.config = get_config("tiny")

    def encode_stems(self, audio: torch.Tensor) -> torch.Tensor:
        b, s, c, n = audio.shape
        return self.ae.encode(audio.reshape(b * s, c, n)).reshape(b, s, -1, self.ae.num_frames(n))

    def decode_stems(self, z: torch.Tensor, length: int) -> torch.Tensor:
        b, s, d, f = z.shape
        return self.ae.decode(z.reshape(b * s, d, f), length).reshape(b, s, self.ae.channels, length)


def main(model_dir: str) -> None:
    torch.set_num_threads(1)
    from pathlib import Path

    bare = not (Path(model_dir) / "unet.safetensors").is_file()
    model = _BareAutoencoder(model_dir) if bare else StemforgeModel.load(model_dir)
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


def latent_motion(model) -> None:
    """How much a held tone's latent moves from frame to frame (variance over time / mean square), per pitch.

    A decoder that sees a constant latent can only give coherent energy at multiples of 150 Hz (the frame rate),
    so pitch between them has to be carried by latent motion (or the tonal path's integrated phase).
    """
    stems = tuple(model.config.stems)
    idx = stems.index("melody") if "melody" in stems else 0
    parts = []
    for hz in (55.0, 110.0, 277.2, 440.0, 600.0):
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        x = sum(np.sin(2 * np.pi * hz * h * t) / h for h in range(1, 6)) * 0.2
        batch = np.zeros((1, len(stems), 2, t.size), np.float32)
        batch[0, idx] = np.stack([x, x])
        with torch.inference_mode():
            z = model.encode_stems(torch.from_numpy(batch))[0, idx, :, 20:-20]
        motion = float((z - z.mean(dim=1, keepdim=True)).square().mean() / z.square().mean().clamp_min(1e-12))
        parts.append(f"{hz:g} Hz {motion:.4f}")
    print("latent motion of a held tone (temporal variance / mean square): " + ", ".join(parts))


def tonal_frequency_error(model, heldout: str) -> None:
    ae = getattr(model, "ae", None) or model.autoencoder
    if ae.tonal is None:
        return
    from engine.train.autoencoder import tonal_losses
    from engine.train.crops import CropSampler

    x = CropSampler(heldout).fixed_clips(8, SAMPLE_RATE)
    with torch.inference_mode():
        _, _, (dev, gate) = ae.forward_with_deviation(x)
        freq, _ = tonal_losses(ae, x, dev, gate)
        zero, _ = tonal_losses(ae, x, torch.zeros_like(dev), gate)
    print(f"tonal path frequency error (1 - cos, magnitude-weighted) on 8 held-out clips: {float(freq):.3f} "
          f"(bin centres, deviation 0: {float(zero):.3f})")


def heldout_keys(model, heldout: str, n: int) -> None:
    from engine.audio import load_audio
    from engine.data.stems import StudioCorpus

    stems = tuple(model.config.stems)
    tonal = [s for s in ("bass", "instrument", "melody") if s in stems]
    hits_rec = hits_real = total = 0
    for item in StudioCorpus(heldout, stems).items[:n]:
        audio = {s: load_audio(item.paths[s]) for s in stems}
        length = min(a.shape[1] for a in audio.values())
        batch = np.stack([audio[s][:, :length] for s in stems])[None].astype(np.float32)
        with torch.inference_mode():
            rec = model.decode_stems(model.encode_stems(torch.from_numpy(batch)), length)[0].float().numpy()
        ref = keyest.parse_key(item.key, item.mode)
        for src, name in ((rec, "rec"), (batch[0], "real")):
            try:
                ok = keyest.estimate_key([src[stems.index(s)] for s in tonal]) == ref
            except Exception:  # no pitched content
                ok = False
            if name == "rec":
                hits_rec += ok
            else:
                hits_real += ok
        total += 1
    print(f"key of reconstructed real stems: {hits_rec}/{total} = {hits_rec / total:.3f} "
          f"(the real stems themselves: {hits_real}/{total} = {hits_real / total:.3f})")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__)
    main(sys.argv[1])
    from pathlib import Path

    bare = not (Path(sys.argv[1]) / "unet.safetensors").is_file()
    loaded = _BareAutoencoder(sys.argv[1]) if bare else StemforgeModel.load(sys.argv[1])
    latent_motion(loaded)
    if len(sys.argv) > 2:
        tonal_frequency_error(loaded, sys.argv[2])
        heldout_keys(loaded, sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 64)
