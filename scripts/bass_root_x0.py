"""Does the U-Net's bass follow the chord track at high noise? Read in latent space with the bass-root probe.

    python scripts/bass_root_x0.py MODEL_DIR DATA CACHE_DIR [--probe FILE] [--items N]

Trains (or loads, ``--probe``) the bass-root probe (:mod:`engine.train.bass_root`) on the latents of ``DATA``
(cached in ``CACHE_DIR`` as ``stemforge train diffusion`` caches them), then, for the probe's held-out items, noises
the clean latents of the first 8 s to t and asks the U-Net for its data prediction with the item's chords, with
the chords moved up 5 semitones, and with no chords. Prints the probe's root accuracy of the predicted bass
against the item's roots and against the moved roots, and the bass-root training loss of the decoded clean bass
against its roots and roots moved a fifth and a fourth (what the loss tells apart). A U-Net whose bass follows the chord track scores high
against the moved roots when given the moved chords.
"""

from __future__ import annotations

import argparse
import logging

import torch

from engine.config import HOP, SAMPLE_RATE
from engine.text.chords import Harmony, chord_features

LEVELS = (300, 500, 700, 900, 980)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("cache")
    p.add_argument("--probe", default=None)
    p.add_argument("--save-probe", default=None)
    p.add_argument("--items", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    from bass_root_probe import one_step_x0

    from engine.diffusion.context import in_context
    from engine.diffusion.schedule import NoiseSchedule
    from engine.model import StemforgeModel
    from engine.text.attributes import attribute_tensor, prompt_attributes
    from engine.text.prompt import build_prompt, task_prefix
    from engine.train.bass_root import (
        bass_chroma_loss,
        load_probe,
        probe_accuracy,
        probe_split,
        root_labels,
        save_probe,
        train_probe,
    )
    from engine.train.diffusion import encode_corpus, open_corpus

    model = StemforgeModel.load(args.model, device="cpu")
    cfg = model.config
    stems = tuple(cfg.stems)
    k = len(stems)
    latents = encode_corpus(model, open_corpus(args.data, stems), args.cache, torch.device("cpu"))
    if args.probe:  # a probe saved by an earlier run (same corpus: its held-out items are the split below)
        probe = load_probe(args.probe)
    else:
        probe, stats = train_probe(latents)
        print("probe:", {k_: round(v, 3) for k_, v in stats.items()})
        if args.save_probe:
            save_probe(probe, args.save_probe, stats)
    val = probe_split(latents)[1][: args.items]  # the probe's held-out items

    schedule = NoiseSchedule.from_config(cfg)
    frames = int(8 * SAMPLE_RATE / HOP)
    gen = torch.Generator().manual_seed(1)
    rows: dict[str, list[float]] = {}
    losses: dict[int, list[float]] = {}
    with torch.inference_mode():
        for n, i in enumerate(val):
            z0 = latents.latents[i][None, :, :, :frames].float()  # (1, k, D, F)
            h = latents.harmony[i]
            bpm, _ = prompt_attributes(latents.captions[i])
            moved = Harmony(tuple(tuple((c + 5) % 12 for c in ch) for ch in h.chords), h.beats_per_chord)
            y = root_labels(h, bpm, 0.0, frames)[None]
            y_moved = root_labels(moved, bpm, 0.0, frames)[None]
            prompt = build_prompt(latents.captions[i], task_prefix=task_prefix(list(stems), [], "generate",
                                                                                   stems=stems))
            states, mask = model.encode_text([prompt])
            attrs = attribute_tensor([prompt])
            variants = {"chords": chord_features(h, bpm, 0.0, frames, HOP / SAMPLE_RATE)[None],
                        "moved": chord_features(moved, bpm, 0.0, frames, HOP / SAMPLE_RATE)[None],
                        "none": None}
            rows.setdefault("clean", []).append(probe_accuracy(probe, z0[:, 0], y))
            # the training loss on the decoded clean bass, against its roots and roots moved a fifth / a fourth
            bass = model.decode_stems(z0, frames * HOP)[:, 0].float().mean(dim=1)  # (1, samples) mono bass
            for shift in (0, 7, 5):
                ys = root_labels(Harmony(tuple(tuple((c + shift) % 12 for c in ch) for ch in h.chords),
                                         h.beats_per_chord), bpm, 0.0, frames)[None]
                total, count = bass_chroma_loss(bass, ys, torch.ones(1, frames))
                acc = losses.setdefault(shift, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + float(total), acc[1] + float(count)
            context = in_context(torch.zeros_like(z0), torch.ones(1, k, frames))
            for t in LEVELS:
                z_t = schedule.add_noise(z0, torch.randn(z0.shape, generator=gen), float(t))
                for name, chords in variants.items():
                    x0 = one_step_x0(model, schedule, z_t, float(t), context, (states, mask, attrs), chords)
                    rows.setdefault(f"t={t} {name} vs roots", []).append(probe_accuracy(probe, x0[:, 0], y))
                    if name == "moved":
                        rows.setdefault(f"t={t} moved vs moved roots", []).append(
                            probe_accuracy(probe, x0[:, 0], y_moved))
            print(f"item {n + 1}/{len(val)}", flush=True)
    print("\nbass-root loss (engine.train.bass_root.bass_chroma_loss) of the decoded clean bass, per STFT frame:")
    print("  " + ", ".join(f"roots +{s_}: {t_ / max(c_, 1.0):.3f}" for s_, (t_, c_) in losses.items())
          + " (uniform power: log 12 = 2.485)")
    print("\nprobe root accuracy per frame (mean over items)")
    for name, v in rows.items():
        print(f"  {name:32s} {sum(v) / len(v):.3f}")


if __name__ == "__main__":
    main()
