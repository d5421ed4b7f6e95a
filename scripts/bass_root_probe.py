"""Where do generated bass lines lose their notes? Bass chord-root hits of real, reconstructed, denoised and
generated bass, and how smooth each stem's latent is.

    python scripts/bass_root_probe.py AE_OR_MODEL_DIR HELDOUT [N]                 # autoencoder rows only
    python scripts/bass_root_probe.py MODEL_DIR HELDOUT [N] --generate [--chord-cfg W]   # + U-Net rows

The key estimator of ``stemforge eval`` takes the tonic from where the bass dwells (``engine.eval.key``), so the
bass has to sound the roots of the chords. For the first N held-out studio items (default 16), with the chords
each was rendered with (``item_harmony``), a chord segment counts as a hit when the strongest pitch class of the
bass chroma over that segment (30-300 Hz, the key estimator's) is the chord's root. Rows:

- ``real``: the rendered bass; ``recon``: its encode -> decode (the ceiling any U-Net on this latent has);
- ``x0 @ t``: the U-Net's one-step data prediction from the real latents noised to ``t`` (all four stems at the
  same ``t``, the prompt and the item's chords given), decoded: at which noise level the note is decided;
- ``generated``: a joint generation from the caption (20 steps of dpmpp-2m, CFG 3, chords planned from the
  prompt as in ``stemforge eval``; the hit is counted against the planned chords).

Latent rows: per stem, the mean squared frame-to-frame difference of the (unwhitened) latent over its mean
square, and the share of its temporal power between 40 and 75 Hz (the latent rate's Nyquist is 75 Hz): pitch
carried as phase motion shows there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.config import SAMPLE_RATE
from engine.data.studio.render import item_harmony
from engine.eval import key as keyest

LEVELS = (100, 300, 500, 700, 900)
FRAME_RATE = 150.0


def root_hits(bass: np.ndarray, harmony, bpm: float) -> tuple[int, int]:
    """(hits, segments) of a (2, N) bass against ``harmony`` on a grid starting at sample 0."""
    seg = int(round(harmony.beats_per_chord * 60.0 / bpm * SAMPLE_RATE))
    hits = total = 0
    for j in range(bass.shape[1] // seg):
        chord = harmony.chords[j % len(harmony.chords)]
        if not chord:
            continue
        c = keyest.chroma(bass[:, j * seg:(j + 1) * seg], SAMPLE_RATE, *keyest.BASS_RANGE)
        hits += int(np.argmax(c) == chord[0])
        total += 1
    return hits, total


def latent_stats(z: np.ndarray) -> tuple[float, float]:
    """z (D, F) -> (mean squared frame difference / mean square, share of temporal power in 40-75 Hz)."""
    z = z - z.mean(axis=-1, keepdims=True)
    diff = float(np.mean(np.diff(z, axis=-1) ** 2) / max(np.mean(z**2), 1e-12))
    power = (np.abs(np.fft.rfft(z, axis=-1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(z.shape[-1], 1.0 / FRAME_RATE)
    return diff, float(power[freqs >= 40].sum() / max(power.sum(), 1e-12))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("heldout")
    p.add_argument("n", nargs="?", type=int, default=16)
    p.add_argument("--generate", action="store_true", help="also the U-Net rows (a model checkpoint)")
    p.add_argument("--chord-cfg", type=float, default=None)
    p.add_argument("--chroma-guidance", type=float, default=None, help="chroma guidance of the generated row")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = None
    if (Path(args.model) / "unet.safetensors").exists():
        from engine.model import StemforgeModel

        model = StemforgeModel.load(args.model, device="cpu")
        ae = model.autoencoder
    else:
        from engine.train.autoencoder import load_trained

        ae = load_trained(args.model)
    ae.eval()
    stems = ("bass", "drums", "instrument", "melody")
    metas = [json.loads(line) for line in open(Path(args.heldout) / "metadata.jsonl")][: args.n]
    hits: dict[str, list[int]] = {}
    lat: dict[str, list[tuple[float, float]]] = {s: [] for s in stems}

    def add(row: str, h: tuple[int, int]) -> None:
        acc = hits.setdefault(row, [0, 0])
        acc[0] += h[0]
        acc[1] += h[1]

    gen = torch.Generator().manual_seed(0)
    for i, meta in enumerate(metas):
        harmony = item_harmony(meta)
        if harmony is None:
            continue
        bpm = float(meta["bpm"])
        audio = {s: sf.read(Path(args.heldout) / meta["id"] / f"{s}.wav", dtype="float32", always_2d=True)[0].T
                 for s in stems}
        n = min(min(a.shape[1] for a in audio.values()), int(8 * SAMPLE_RATE))
        x = torch.from_numpy(np.stack([audio[s][:, :n] for s in stems]))  # (4, 2, n)
        with torch.inference_mode():
            z = ae.encode(x)  # (4, D, F)
            rec = ae.decode(z, n).numpy()
        add("real", root_hits(audio["bass"][:, :n], harmony, bpm))
        add("recon", root_hits(rec[0], harmony, bpm))
        for j, s in enumerate(stems):
            lat[s].append(latent_stats(z[j].numpy()))
        if model is not None and args.generate:
            _unet_rows(model, meta, harmony, x, n, i, gen, add, args.chord_cfg, args.chroma_guidance)
        print(f"item {i + 1}/{len(metas)}", {k: f"{v[0]}/{v[1]}" for k, v in hits.items()}, flush=True)

    print("\nbass chord-root hits per chord segment")
    for row, (h, t) in hits.items():
        print(f"  {row:12s} {h / max(t, 1):.3f}  ({h}/{t})")
    print("latent: frame-difference ratio / share of temporal power at 40-75 Hz")
    for s in stems:
        a = np.array(lat[s])
        print(f"  {s:10s} {a[:, 0].mean():.3f} / {a[:, 1].mean():.3f}")


def one_step_x0(model, schedule, z_t: torch.Tensor, t: float, context: torch.Tensor, text, chords) -> torch.Tensor:
    """The U-Net's data prediction (1, k, D, F) from noisy whitened latents ``z_t`` (every stem at ``t``);
    ``text``: (states, mask, attrs) of the prompt; ``chords``: (1, 24, F) or None."""
    from engine.diffusion.context import unet_input

    states, mask, attrs = text
    k, D, frames = z_t.shape[1:]
    t_vec = torch.full((1, k), t)
    inp = unet_input(z_t, context)
    out = model.unet(inp, t_vec, states, mask.bool(), causal=False, attrs=attrs, grid_offset=0.0,
                     chords=chords).float()
    return schedule.x0_from_output(out, inp[:, : k * D], t_vec).reshape(1, k, D, frames)


def _unet_rows(model, meta, harmony, x, n, i, gen, add, chord_cfg, chroma_guidance=None) -> None:
    from engine.diffusion.context import in_context
    from engine.diffusion.schedule import NoiseSchedule
    from engine.pipeline import GenerationRequest, run_pipeline
    from engine.text.attributes import attribute_tensor
    from engine.text.chords import Harmony, chord_features
    from engine.text.prompt import build_prompt, task_prefix

    cfg = model.config
    stems = tuple(cfg.stems)
    k = len(stems)
    bpm = float(meta["bpm"])
    schedule = NoiseSchedule.from_config(cfg)
    with torch.inference_mode():
        z0 = model.encode_stems(x[None]).float()  # (1, k, D, F) whitened
        frames = z0.shape[-1]
        prompt = build_prompt(meta["caption"], task_prefix=task_prefix(list(stems), [], "generate", stems=stems))
        states, mask = model.encode_text([prompt])
        attrs = attribute_tensor([prompt])
        chords = chord_features(harmony, bpm, 0.0, frames, 1.0 / FRAME_RATE)[None]
        context = in_context(torch.zeros_like(z0), torch.ones(1, k, frames))
        for t in LEVELS:
            z_t = schedule.add_noise(z0, torch.randn(z0.shape, generator=gen), float(t))
            x0 = one_step_x0(model, schedule, z_t, float(t), context, (states, mask, attrs), chords)
            bass = model.decode_stems(x0, n)[0, 0].float().numpy()
            add(f"x0 @ t={t}", root_hits(bass, harmony, bpm))
    kw = {} if chord_cfg is None else {"chord_cfg": chord_cfg}
    if chroma_guidance is not None:
        kw["chroma_guidance"] = chroma_guidance
    res = run_pipeline(model, GenerationRequest(task="generate", stems=list(stems), num_samples=n,
                                                prompt=meta["caption"], steps=20, seed=i, **kw))
    planned = res.manifest["chords"]
    if planned is not None:
        h = Harmony(tuple(tuple(c) for c in planned["pitch_classes"]), float(planned["beats_per_chord"]))
        add("generated", root_hits(res.stems["bass"], h, bpm))


if __name__ == "__main__":
    main()
