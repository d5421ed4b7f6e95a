"""The bass-root loss and probe (engine/train/bass_root.py): labels on the tempo grid, the loss read off decoded
audio, its term in the diffusion step and the trainer's handling, and the diagnostic probe that reads a root a latent
carries (and not one it does not)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.config import HOP, SAMPLE_RATE, AutoencoderConfig, ModelConfig, UNetConfig
from engine.diffusion.schedule import NoiseSchedule
from engine.model import StemforgeModel
from engine.text.chords import Harmony, chord_features
from engine.train.bass_root import (
    N_FFT,
    TONAL_BAND,
    bass_chroma_loss,
    chord_roots,
    chroma_share_loss,
    load_probe,
    pitch_class_matrix,
    probe_accuracy,
    root_labels,
    save_probe,
    scale_targets,
    train_probe,
)
from engine.train.diffusion import DiffusionTrainer, DiffusionTrainOptions, LatentSet, batch_loss
from protocol.errors import InvalidArgument

FRAME_S = HOP / SAMPLE_RATE
CAPTION = "funk at 120 bpm in C major"  # a beat = 0.5 s = 75 latent frames
D = 8

CHORDS = ModelConfig(
    name="test-chords",
    whitened_dim=D,
    segment_seconds=1.0,  # 150 latent frames
    autoencoder=AutoencoderConfig(latent_dim=D, hidden=32, encoder_depth=1, decoder_depth=1),
    unet=UNetConfig(channels=(32, 64), blocks_per_level=1, attention_levels=(False, True), heads=2,
                    cross_attention_dim=32, time_embed_dim=32, attribute_conditioning=True, beat_clock=True,
                    chord_conditioning=True),
)


@pytest.fixture(scope="module")
def text_encoder(tiny_model):
    return tiny_model.text_encoder


def _model(text_encoder, seed=0):
    model = StemforgeModel.from_config(CHORDS, seed=seed)
    model.text_encoder = text_encoder
    return model


def _root_set(n=24, frames=300, carry_root=True, seed=0) -> LatentSet:
    """Items with a chord a beat; the bass latent is a fixed pattern per root (plus noise), or pure noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(12, D, generator=torch.Generator().manual_seed(42))
    latents, harmony = [], []
    for _ in range(n):
        roots = torch.randint(0, 12, (4,), generator=g).tolist()
        h = Harmony(tuple((r, (r + 4) % 12, (r + 7) % 12) for r in roots), 1.0)
        z = torch.randn(4, D, frames, generator=g)
        if carry_root:
            y = root_labels(h, 120.0, 0.0, frames)
            z[0] = patterns[y].T + 0.3 * torch.randn(D, frames, generator=g)
        latents.append(z)
        harmony.append(h)
    return LatentSet(latents, torch.ones(n, 4, dtype=torch.bool), [CAPTION] * n, [f"i{i}" for i in range(n)],
                     harmony)


def test_root_labels_follow_the_chords_on_the_tempo_grid() -> None:
    h = Harmony(((0, 4, 7), (5, 9, 0), (), (7, 11, 2)), 1.0)
    y = root_labels(h, 120.0, 0.0, 320)
    assert y.dtype == torch.int64 and y.shape == (320,)
    assert (y[:75] == 0).all() and (y[75:150] == 5).all() and (y[150:225] == -1).all() and (y[225:300] == 7).all()
    assert (y[300:] == 0).all()  # the progression cycles
    # half a beat later on the grid: the second chord starts 37.5 frames in
    z = root_labels(h, 120.0, 0.25, 80)
    assert (z[:38] == 0).all() and (z[38:80] == 5).all()
    assert (root_labels(h, None, 0.0, 10) == -1).all()  # no tempo: no grid
    # the same read off chord tracks, batched: a dropped (all-zero) track has no roots
    tracks = torch.stack([chord_features(h, 120.0, 0.0, 320, FRAME_S), torch.zeros(24, 320)])
    roots = chord_roots(tracks)
    assert roots.shape == (2, 320) and torch.equal(roots[0], y) and (roots[1] == -1).all()


def test_the_probe_reads_a_root_the_latent_carries_and_not_one_it_lacks() -> None:
    probe, stats = train_probe(_root_set(), steps=300, batch=16, frames=150, lr=3e-3)
    assert stats["val_accuracy"] > 0.9, stats
    assert not any(p.requires_grad for p in probe.parameters()) and not probe.training
    _, blind = train_probe(_root_set(carry_root=False), steps=300, batch=16, frames=150, lr=3e-3)
    assert blind["val_accuracy"] < 0.35, blind  # a bass latent without the note gives nothing to read


def test_the_probe_needs_chords() -> None:
    ls = _root_set(n=12)
    with pytest.raises(ValueError):
        train_probe(LatentSet(ls.latents, ls.present, ls.captions, ls.ids, None))
    with pytest.raises(ValueError):
        train_probe(LatentSet(ls.latents, ls.present, ls.captions, ls.ids, [None] * 12))


@pytest.mark.parametrize("prediction", ["v", "epsilon"])
def test_x0_from_output_inverts_the_target(prediction) -> None:
    sched = NoiseSchedule(1000, "cosine", prediction)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4 * D, 20, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([[10.0, 300, 600, 900], [0, 0, 0, 0], [999, 500, 50, 700]])
    x_t = sched.add_noise(x0.reshape(3, 4, D, 20), eps.reshape(3, 4, D, 20), t).reshape(x0.shape)
    target = sched.target(x0, eps, t)
    got = sched.x0_from_output(target, x_t, t)
    keep = slice(None) if prediction == "v" else slice(1, 2)  # epsilon: exact away from t = T
    torch.testing.assert_close(got[keep], x0[keep], atol=2e-4, rtol=1e-4)


def test_probe_save_and_load_round_trip(tmp_path) -> None:
    probe, stats = train_probe(_root_set(n=12), steps=20, batch=8, frames=150)
    save_probe(probe, tmp_path / "p.pt", stats)
    again = load_probe(tmp_path / "p.pt")
    z = torch.randn(2, D, 40)
    torch.testing.assert_close(again(z), probe(z))


# ---- the loss on decoded audio -------------------------------------------------------------------
def test_pitch_classes_fold_the_bass_band_only() -> None:
    m = pitch_class_matrix()
    freqs = torch.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    assert m.shape == (12, N_FFT // 2 + 1)
    inside = (freqs >= 30) & (freqs <= 300)
    assert (m.sum(dim=0)[inside] == 1).all() and (m.sum(dim=0)[~inside] == 0).all()
    a2 = int(torch.argmin((freqs - 110.0).abs()))  # A2
    assert m[9, a2] == 1
    e1 = int(torch.argmin((freqs - 41.2).abs()))  # E1
    assert m[4, e1] == 1


def _tone(hz: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * torch.sin(2 * torch.pi * hz * t))[None]


def test_the_loss_is_low_on_the_root_and_high_elsewhere() -> None:
    frames = int(2 * SAMPLE_RATE / HOP)  # 2 s of latent frames
    ones = torch.ones(1, frames)
    def per_frame(audio, root):
        s, n = bass_chroma_loss(audio, torch.full((1, frames), root), ones)
        return float(s / n)
    a2 = _tone(110.0, 2.0)
    assert per_frame(a2, 9) < 0.15  # nearly all of the band's power on A
    assert min(per_frame(a2, 8), per_frame(a2, 10)) > 2.5  # little leaks to the neighbouring semitones
    assert per_frame(a2, 2) > 6.0  # almost none on D
    assert per_frame(torch.zeros_like(a2), 9) == pytest.approx(np.log(12), rel=1e-4)  # silence: uniform
    # frames without a label or with zero weight do not count
    labels = torch.full((1, frames), 9)
    labels[:, : frames // 2] = -1
    s_half, n_half = bass_chroma_loss(a2, labels, ones)
    s_all, n_all = bass_chroma_loss(a2, torch.full((1, frames), 9), ones)
    assert 0 < float(n_half) < float(n_all) and float(s_half) < float(s_all)
    s0, n0 = bass_chroma_loss(a2, torch.full((1, frames), 9), torch.zeros(1, frames))
    assert float(s0) == 0.0 and float(n0) == 0.0
    # differentiable: the gradient moves the audio towards the root
    x = (0.5 * _tone(110.0, 2.0) + 0.5 * _tone(146.83, 2.0)).requires_grad_(True)  # A + D
    loss = bass_chroma_loss(x, torch.full((1, frames), 9), ones)[0]
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    stepped = (x - 0.05 * x.grad / x.grad.abs().max()).detach()
    assert float(bass_chroma_loss(stepped, torch.full((1, frames), 9), ones)[0]) < float(loss.detach())


def _line(notes: list[tuple[float, float]]) -> torch.Tensor:
    """(1, N) a sequence of (Hz, seconds) sine notes."""
    return torch.cat([_tone(hz, sec) for hz, sec in notes], dim=1)


def test_segment_pooling_forgives_a_passing_tone_and_keeps_chords_apart() -> None:
    frames = int(2 * SAMPLE_RATE / HOP)
    ones = torch.ones(1, frames)
    a = torch.full((1, frames), 9)

    def loss(audio, labels, pool):
        s, n = bass_chroma_loss(audio, labels, ones, pool=pool)
        return float(s / n)
    # A held for 1.6 s with a 0.4 s passing tone on B in the middle: per frame the passing tone's frames cost
    # log-share of almost nothing; pooled over the segment the root still holds most of the power
    walk = _line([(110.0, 0.8), (123.47, 0.4), (110.0, 0.8)])
    held = _tone(110.0, 2.0)
    assert loss(walk, a, "segment") < 0.45 and loss(walk, a, "frame") > 1.0
    assert loss(walk, a, "segment") < 0.5 * loss(walk, a, "frame")
    assert loss(held, a, "segment") == pytest.approx(loss(held, a, "frame"), abs=0.05)  # both ~0
    assert loss(_tone(146.83, 2.0), a, "segment") > 5.0  # a whole segment on D: as bad as per frame
    # two chords, A then D: segments are scored apart, so playing them in the wrong order costs
    ad = torch.full((1, frames), 9)
    ad[:, frames // 2:] = 2
    right = _line([(110.0, 1.0), (146.83, 1.0)])
    wrong = _line([(146.83, 1.0), (110.0, 1.0)])
    assert loss(right, ad, "segment") < 0.3 and loss(wrong, ad, "segment") > 4.0
    # a zero weight or no label: nothing scored; silence costs log 12 per segment as per frame
    s0, n0 = bass_chroma_loss(right, ad, torch.zeros(1, frames), pool="segment")
    assert float(s0) == 0.0 and float(n0) == 0.0
    assert loss(torch.zeros_like(right), ad, "segment") == pytest.approx(np.log(12), rel=1e-3)
    with pytest.raises(ValueError):
        bass_chroma_loss(right, ad, ones, pool="bar")


def test_chord_tones_and_the_crops_collection_as_targets() -> None:
    frames = int(2 * SAMPLE_RATE / HOP)
    ones = torch.ones(1, frames)
    h = Harmony(((0, 4, 7), (5, 9, 0)), 1.0)  # C then F, a beat (0.5 s) each at 120 bpm
    tones = chord_features(h, 120.0, 0.0, frames, FRAME_S)[None, :12]  # (1, 12, F)

    def loss(audio, targets):
        s, n = chroma_share_loss(audio, targets, ones, TONAL_BAND, "segment")
        return float(s / n)
    c_e_g, f_a_c = (261.63, 329.63, 392.0), (349.23, 440.0, 523.25)
    chord = lambda hz, sec: sum(_tone(f, sec) for f in hz)  # noqa: E731
    comping = torch.cat([chord(c_e_g, 0.5), chord(f_a_c, 0.5)] * 2, dim=1)
    clash = torch.cat([chord(f_a_c, 0.5), chord(c_e_g, 0.5)] * 2, dim=1)  # each chord over the other's bar
    off_key = torch.cat([chord((277.18, 369.99, 415.3), 0.5)] * 4, dim=1)  # C#, F#, G#: none in C, E, F, G, A
    assert loss(comping, tones) < 0.1
    assert loss(clash, tones) > loss(comping, tones) + 0.5
    assert loss(off_key, tones) > 4.0
    # the crop's collection: any tone of the progression counts anywhere in it (a melody on A over C is fine)
    scale = scale_targets(tones)
    assert torch.equal(scale[0, :, 0], torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0]))
    assert (scale == scale[:, :, :1]).all()
    assert loss(clash, scale) < 0.1 and loss(off_key, scale) > 4.0
    dropped = tones.clone()
    dropped[..., : frames // 2] = 0  # no chord known there: no target
    assert (scale_targets(dropped)[..., : frames // 2] == 0).all()


def _opts(tmp_path, **kw):
    base = dict(data="x", ae="x", out=str(tmp_path / "run"), steps=6, batch=4, lr=3e-3, warmup=0, device="cpu",
                threads=1, ckpt_minutes=1e6, log_every=1000, ema_decay=0.9, chord_dropout=0.0,
                bass_root_weight=1.0, joint_share=1.0)
    base.update(kw)
    return DiffusionTrainOptions(**base)


def test_the_root_term_joins_the_step_where_the_bass_is_noisy(tmp_path, text_encoder) -> None:
    tr = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path, bass_root_items=2))
    assert tr.bass_root is not None and tr.bass_root.stem == 0
    assert not any(p.requires_grad for p in tr.model.autoencoder.parameters())
    batch, states, mask = tr.make_batch(0)
    assert batch.loss_mask[:, 0].sum() > 0  # joint generation: the bass is generated (where the task says)
    assert (chord_roots(batch.chords) >= 0).all()  # chord_dropout 0, every caption names a key: roots everywhere
    parts: dict[str, float] = {}
    loss = batch_loss(tr.unet, batch, states, mask, 4, tr.bass_root, parts)
    assert parts["bass_root"] > 0
    assert float(loss.detach()) == pytest.approx(parts["mse"] + parts["bass_root"], rel=1e-5)
    plain = batch_loss(tr.unet, batch, states, mask, 4)
    assert float(plain.detach()) == pytest.approx(parts["mse"], rel=1e-6)
    tr.unet.zero_grad()
    (loss - plain).backward()  # the root term alone reaches the U-Net, through the frozen decoder
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.unet.parameters())
    # a clean bass (t = 0, sigma 0) adds nothing: the term weighs sigma(t)^2
    batch.t[:, 0] = 0.0
    parts = {}
    batch_loss(tr.unet, batch, states, mask, 4, tr.bass_root, parts)
    assert parts["bass_root"] == 0.0
    # chords dropped: no labels, no term
    tr2 = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path / "b", chord_dropout=1.0))
    b2, s2, m2 = tr2.make_batch(0)
    assert (chord_roots(b2.chords) == -1).all()
    parts = {}
    assert float(batch_loss(tr2.unet, b2, s2, m2, 4, tr2.bass_root, parts).detach()) == pytest.approx(parts["mse"])


def test_steps_with_the_term_lower_it(tmp_path, text_encoder) -> None:
    """Optimising on one batch lowers the bass-root loss with the term and not without it."""
    def after(weight: float) -> tuple[float, float]:
        tr = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path / f"w{weight}", steps=30,
                                                                        bass_root_weight=weight, lr=1e-3))
        prepared = tr.make_batch(0)
        measure = dataclasses.replace(tr.bass_root, weight=1.0)

        def root() -> float:
            parts: dict[str, float] = {}
            with torch.no_grad():
                batch_loss(tr.unet, prepared[0], prepared[1], prepared[2], 4, measure, parts)
            return parts["bass_root"]

        before = root()
        for _ in range(30):
            tr.train_step(prepared=prepared)
        return before, root()

    b1, a1 = after(20.0)
    b0, a0 = after(1e-9)
    assert b1 == pytest.approx(b0)  # same start
    assert a1 < 0.8 * b1 and a1 < a0 - 0.1, (b1, a1, a0)


def test_the_chord_tone_terms_join_the_step(tmp_path, text_encoder) -> None:
    tr = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path, bass_root_items=2, tonal_weight=0.5,
                                                                   bass_root_pool="segment"))
    assert tr.bass_root.tonal == ((2, "tones"), (3, "scale")) and tr.bass_root.pool == "segment"
    batch, states, mask = tr.make_batch(0)
    parts: dict[str, float] = {}
    loss = batch_loss(tr.unet, batch, states, mask, 4, tr.bass_root, parts)
    assert set(parts) == {"mse", "bass_root", "tones_2", "scale_3"} and parts["tones_2"] > 0
    assert float(loss.detach()) == pytest.approx(
        parts["mse"] + parts["bass_root"] + 0.5 * (parts["tones_2"] + parts["scale_3"]), rel=1e-5)
    # the chord-tone terms alone, without the bass root
    tonal_only = dataclasses.replace(tr.bass_root, weight=0.0)
    parts = {}
    batch_loss(tr.unet, batch, states, mask, 4, tonal_only, parts)
    assert set(parts) == {"mse", "tones_2", "scale_3"}
    tr.unet.zero_grad()
    (batch_loss(tr.unet, batch, states, mask, 4, tonal_only) - batch_loss(tr.unet, batch, states, mask, 4)).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.unet.parameters())
    only = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path / "t", bass_root_weight=0.0,
                                                                     tonal_weight=1.0, steps=2))
    assert only.bass_root is not None
    only.run()
    assert "bass_root" not in only.last_parts and "tones_2" in only.last_parts
    only.export(tmp_path / "model")
    meta = StemforgeModel.from_pretrained(tmp_path / "model").meta["training"]
    assert meta["tonal_weight"] == 1.0 and meta["bass_root_pool"] == "frame"
    for bad in (dict(tonal_weight=-0.1), dict(bass_root_pool="bar")):
        with pytest.raises(InvalidArgument):
            _opts(tmp_path, **bad).validate()


def test_the_trainer_records_the_term_and_refuses_what_it_cannot_use(tmp_path, text_encoder) -> None:
    tr = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path, steps=3, bass_root_items=3))
    tr.run()
    assert "bass_root" in tr.last_parts
    tr.export(tmp_path / "model")
    meta = StemforgeModel.from_pretrained(tmp_path / "model").meta["training"]
    assert meta["bass_root_weight"] == 1.0 and meta["bass_root_items"] == 3
    plain = DiffusionTrainer(_model(text_encoder), _root_set(), _opts(tmp_path / "p", bass_root_weight=0.0))
    assert plain.bass_root is None
    with pytest.raises(InvalidArgument):
        _opts(tmp_path, bass_root_weight=-1.0).validate()
    with pytest.raises(InvalidArgument):
        _opts(tmp_path, bass_root_items=0).validate()
    ls = _root_set(n=12)
    no_chords = LatentSet(ls.latents, ls.present, ls.captions, ls.ids, None)
    with pytest.raises(InvalidArgument):
        DiffusionTrainer(_model(text_encoder), no_chords, _opts(tmp_path))
