"""The trained checkpoints the model card reports on: the files hash to the figures' model hash and fit the package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt
from engine.model import StemforgeModel

REPO = Path(__file__).resolve().parents[2]
LATEST = REPO / "checkpoints" / "stemforge-tiny-chords-s19700"
PACKAGE_LIMIT = 60_000_000  # issue 4: the embedded default ships in at most 60 MB


def test_latest_checkpoint_is_the_one_evaluated_and_fits_the_package() -> None:
    report = json.loads((REPO / "docs" / "eval" / "tiny-chords-s19700.json").read_text())
    assert ckpt.directory_hash(LATEST) == report["model_hash"] and report["n"] == 64
    assert sum((LATEST / n).stat().st_size for n in ckpt.CHECKPOINT_FILES if (LATEST / n).is_file()) < PACKAGE_LIMIT
    state, _ = ckpt.read_tensors(LATEST / ckpt.UNET_FILE)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert json.loads((LATEST / ckpt.META_FILE).read_text())["unet_dtype"] == "float16"
    assert StemforgeModel.from_pretrained(LATEST).refresh_hash() == report["model_hash"]  # a re-save: same bytes


GATES = {"tempo_adherence": (">=", 0.60), "key_adherence": (">=", 0.50), "stem_role_accuracy": (">=", 0.80),
         "inpaint_outside_db": ("<=", -40.0), "ae_lsd_db": ("<=", 10.0)}  # issue 4, on `stemforge eval --n 64`


def test_the_shipped_default_is_the_evaluated_run_and_passes_the_gates() -> None:
    """engine/weights/default/ holds run 10's files, bit for bit, and its evaluation (docs/eval/default.json, the
    model card's table) passes every gate at n = 64 with the pipeline's defaults."""
    from engine.model import DEFAULT_WEIGHTS
    from engine.pipeline import DEFAULT_CHORD_CFG, DEFAULT_CHROMA_GUIDANCE

    report = json.loads((REPO / "docs" / "eval" / "default.json").read_text())
    assert report["n"] == 64 and report["chords"] == "planned"
    assert report["chord_cfg"] == DEFAULT_CHORD_CFG and report["chroma_guidance"] == DEFAULT_CHROMA_GUIDANCE
    assert ckpt.directory_hash(DEFAULT_WEIGHTS) == report["model_hash"]
    assert ckpt.directory_hash(REPO / "checkpoints" / "stemforge-tiny-lowband-s13000") == report["model_hash"]
    assert sum(f.stat().st_size for f in DEFAULT_WEIGHTS.iterdir()) < PACKAGE_LIMIT
    for key, (op, bound) in GATES.items():
        value = report["model"][key]
        assert (value >= bound if op == ">=" else value <= bound), (key, value, bound)
    model = StemforgeModel.default()
    assert model.trained and model.hash == report["model_hash"]


@pytest.mark.parametrize(("name", "report_name", "n"), [("stemforge-tiny-lowband-s3500", "tiny-lowband-s3500-n32", 32),
                                                       ("stemforge-tiny-lowband-s13000", "tiny-lowband-s13000", 64),
                                                       ("stemforge-tiny-bassroot-s16240", "tiny-bassroot-s16240", 64),
                                                       ("stemforge-tiny-lowband-s13000", "tiny-lowband-s13000-chroma1", 64),
                                                       ("stemforge-tiny-lowband-s13000", "tiny-lowband-s13000-chroma1.5",
                                                        64),
                                                       ("stemforge-tiny-lowband-s13000", "tiny-lowband-s13000-tonicfirst",
                                                        64),
                                                       ("stemforge-tiny-lowband-s13000",
                                                        "tiny-lowband-s13000-tonicfirst-g0", 64),
                                                       ("stemforge-tiny-lowband-s13000",
                                                        "tiny-lowband-s13000-tonicfirst-scale-batched", 64)])
def test_low_band_runs_are_the_ones_evaluated_and_read_the_low_band_latents(name, report_name, n) -> None:
    run = REPO / "checkpoints" / name
    report = json.loads((REPO / "docs" / "eval" / f"{report_name}.json").read_text())
    assert ckpt.directory_hash(run) == report["model_hash"] and report["n"] == n and report["chord_cfg"] == 6.0
    assert sum((run / f).stat().st_size for f in ckpt.CHECKPOINT_FILES if (run / f).is_file()) < PACKAGE_LIMIT
    model = StemforgeModel.from_pretrained(run)
    assert model.config.autoencoder.lowband_fft == 8192 and model.autoencoder.enc_low is not None
    assert model.refresh_hash() == report["model_hash"]  # a re-save: same bytes
    if "chroma" in report_name:  # the guided evaluations (model card, "Chroma guidance") say which strength
        assert report["chroma_guidance"] == float(report_name.rsplit("chroma", 1)[1])
    if "tonicfirst" in report_name:  # model card, "Planned progressions that state the key": guided, or not (g0)
        assert report["chords"] == "planned" and report["chroma_guidance"] == (0.0 if report_name.endswith("g0")
                                                                               else 1.0)


@pytest.mark.parametrize("name", ["stemforge-tiny-bassroot-s16240", "stemforge-tiny-lowband-s13000",
                                  "stemforge-tiny-lowband-s3500",
                                  "stemforge-tiny-chords-s19700", "stemforge-tiny-tonal-keys-s15200",
                                  "stemforge-tiny-tonal-s11400", "stemforge-tiny-tonal-s5400",
                                  "stemforge-tiny-clock-s4600"])
def test_trained_checkpoints_load_as_trained_float32_models(name) -> None:
    model = StemforgeModel.from_pretrained(REPO / "checkpoints" / name)
    assert model.trained and model.config.name == "tiny" and model.whitening.is_finalized
    assert model.hash == ckpt.directory_hash(REPO / "checkpoints" / name)
    assert all(p.dtype == torch.float32 for p in model.unet.parameters())


def test_the_bass_root_run_records_its_loss() -> None:
    """Run 11 trained with the bass-root loss (engine/train/bass_root.py) on top of run 10."""
    meta = json.loads((REPO / "checkpoints" / "stemforge-tiny-bassroot-s16240" / ckpt.META_FILE).read_text())
    assert meta["training"]["bass_root_weight"] == 0.5 and meta["training"]["steps"] == 3240


def test_latest_checkpoint_learned_its_chord_track() -> None:
    """Run 8 added the chord track at zero; training moved every level's projection off zero."""
    model = StemforgeModel.from_pretrained(LATEST)
    assert model.config.unet.chord_conditioning and model.unet.chord_track is not None
    assert all(float(conv.weight.detach().abs().max()) > 1e-3 for conv in model.unet.chord_track.proj)


def _held_note_motion(ae, hz: float) -> float:
    """Frame-to-frame motion of the latent of a held five-harmonic note: temporal variance / mean square."""
    import math

    t = torch.arange(48000) / 48000.0
    x = sum(torch.sin(2 * math.pi * hz * h * t) / h for h in range(1, 6)) * 0.2
    with torch.inference_mode():
        z = ae.encode(torch.stack([x, x])[None])[0, :, 20:-20]
    return float((z - z.mean(dim=1, keepdim=True)).square().mean() / z.square().mean())


def test_low_band_autoencoder_holds_a_bass_note_with_a_steady_latent() -> None:
    """The low-band autoencoder (docs/MODEL_CARD.md) carries bass pitch without phase motion in its latent."""
    from engine.train.autoencoder import load_trained

    low = load_trained(REPO / "checkpoints" / "autoencoder-tiny-lowband")
    tonal = load_trained(REPO / "checkpoints" / "autoencoder-tiny-tonal")
    assert low.cfg.lowband_fft == 8192 and low.cfg.tonal_head and low.enc_low is not None
    assert float(low.enc_low.weight.detach().abs().max()) > 1e-3  # trained off its zero start
    for hz in (55.0, 110.0):  # A1, A2
        assert _held_note_motion(low, hz) < 0.5 * _held_note_motion(tonal, hz)
