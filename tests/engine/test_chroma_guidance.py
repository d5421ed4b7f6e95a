"""Chroma guidance (engine/diffusion/chroma_guidance.py): the sampler's data prediction of the bass, instrument and
melody moved onto the chords they follow, nothing else touched, and the pipeline's handling of the option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.config import HOP, SAMPLE_RATE
from engine.diffusion.chroma import chord_roots, chroma_share_loss, root_targets, scale_targets
from engine.diffusion.chroma_guidance import GUIDED_STEMS, make_chroma_guide
from engine.pipeline import DEFAULT_CHROMA_GUIDANCE, GenerationRequest, run_pipeline
from engine.text.chords import chord_features, parse_chords
from protocol.errors import InvalidArgument

FRAMES = 150  # 1 s of latent frames
SAMPLES = FRAMES * HOP


def _chords() -> torch.Tensor:
    return chord_features(parse_chords("Am F"), 120.0, 0.0, FRAMES, HOP / SAMPLE_RATE)  # (24, F), 2 beats each


def _losses(guide, x0: torch.Tensor, stems, generated) -> dict[str, float]:
    """Each guided stem's chroma loss on its decoded data prediction (what the guide lowers)."""
    D = guide.dim
    ch = _chords()
    roots, tones = chord_roots(ch[None]), ch[None, :12]
    out = {}
    for name, kind, band in GUIDED_STEMS:
        pos = generated.index(stems.index(name))
        z = x0.reshape(len(generated), D, FRAMES)[pos:pos + 1]
        with torch.no_grad():
            audio = guide.decode(z, SAMPLES)  # the frozen decoder, mono
        tgt = root_targets(roots) if kind == "root" else tones if kind == "tones" else scale_targets(tones)
        s, n = chroma_share_loss(audio, tgt, torch.ones(1, FRAMES), band, "segment")
        out[name] = float(s / n)
    return out


def test_the_guide_moves_the_tonal_stems_onto_their_chords_and_nothing_else(tiny_model) -> None:
    stems = tuple(tiny_model.config.stems)
    generated = list(range(len(stems)))
    D = tiny_model.config.whitened_dim
    guide = make_chroma_guide(tiny_model, stems, generated, _chords(), torch.ones(FRAMES), SAMPLES, 0.2, 1000.0)
    assert guide is not None and guide.t_min == 300.0
    assert sorted(stems[generated[p]] for p in guide.positions) == ["bass", "instrument", "melody"]
    x0 = torch.randn(1, len(stems) * D, FRAMES, generator=torch.Generator().manual_seed(0))
    moved = guide(x0, 900.0, 1.0)
    assert moved.shape == x0.shape and torch.isfinite(moved).all()
    per_stem = (moved - x0).reshape(len(stems), D, FRAMES).abs().amax(dim=(1, 2))
    drums = stems.index("drums")
    assert per_stem[drums] == 0  # not a tonal stem: untouched, bit for bit
    assert all(per_stem[i] > 0 for i in generated if i != drums)
    # the step is sigma(t) x scale in whitened RMS units per stem
    rms = (moved - x0).reshape(len(stems), D, FRAMES).pow(2).mean(dim=(1, 2)).sqrt()
    assert rms[stems.index("bass")] == pytest.approx(0.2, rel=1e-3)
    before, after = _losses(guide, x0, stems, generated), _losses(guide, moved, stems, generated)
    assert all(after[s] < before[s] for s in before), (before, after)
    # below t_min (the notes are decided by then) the prediction passes through as it is
    assert guide(x0, 200.0, 0.5) is x0


def test_the_guide_decodes_one_stem_at_a_time_without_weight_gradients(tiny_model) -> None:
    stems = tuple(tiny_model.config.stems)
    every = list(range(len(stems)))
    guide = make_chroma_guide(tiny_model, stems, every, _chords(), torch.ones(FRAMES), SAMPLES, 1.0, 1000.0)
    params = list(tiny_model.autoencoder.parameters())
    before = [p.requires_grad for p in params]
    assert any(before)  # as loaded: the guide has something to take out of the graph
    seen = []
    decode = guide.decode

    def spy(z, samples):
        seen.append((z.shape[0], any(p.requires_grad for p in params)))
        return decode(z, samples)

    guide.decode = spy
    x0 = torch.randn(1, len(stems) * guide.dim, FRAMES, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():  # as the pipeline calls it
        moved = guide(x0, 900.0, 1.0)
    assert seen == [(1, False)] * 3  # bass, instrument, melody, each alone, the weights out of the graph
    assert [p.requires_grad for p in params] == before and not moved.requires_grad


def test_nothing_to_guide_gives_no_guide(tiny_model) -> None:
    stems = tuple(tiny_model.config.stems)
    every = list(range(len(stems)))
    mask = torch.ones(FRAMES)
    assert make_chroma_guide(tiny_model, stems, every, _chords(), mask, SAMPLES, 0.0, 1000.0) is None
    assert make_chroma_guide(tiny_model, stems, every, torch.zeros(24, FRAMES), mask, SAMPLES, 1.0, 1000.0) is None
    assert make_chroma_guide(tiny_model, stems, [stems.index("drums")], _chords(), mask, SAMPLES, 1.0,
                             1000.0) is None
    # only the bass generated: it is the one guided, at its position in the generated stack
    g = make_chroma_guide(tiny_model, stems, [stems.index("bass")], _chords(), mask, SAMPLES, 1.0, 1000.0)
    assert g is not None and g.positions == [0] and g.bands == [GUIDED_STEMS[0][2]]


def test_the_melody_follows_the_prompts_scale_where_the_key_is_known(tiny_model) -> None:
    stems = tuple(tiny_model.config.stems)
    every = list(range(len(stems)))
    chords = chord_features(parse_chords("C F", 1.0), 120.0, 0.0, FRAMES, HOP / SAMPLE_RATE)  # I-IV, a beat each
    mask = torch.ones(FRAMES)
    mask[:20] = 0  # frames not generated keep their targets; the weights say they do not count
    c_major = (0, 2, 4, 5, 7, 9, 11)
    melody = [n for n, _, _ in GUIDED_STEMS].index("melody")
    keyed = make_chroma_guide(tiny_model, stems, every, chords, mask, SAMPLES, 1.0, 1000.0, c_major)
    union = make_chroma_guide(tiny_model, stems, every, chords, mask, SAMPLES, 1.0, 1000.0)
    on = lambda g: set(torch.nonzero(g.targets[melody, :, 75]).flatten().tolist())  # noqa: E731
    assert on(keyed) == set(c_major)  # B (11) asked for: it tells C major from F major
    assert on(union) == {0, 4, 5, 7, 9}  # the chords' tones only: no B
    assert torch.equal(keyed.targets[:melody], union.targets[:melody])  # bass and instrument: as before
    # frames without a chord are not scored either way
    bare = chord_features(parse_chords("C -", 1.0), 120.0, 0.0, FRAMES, HOP / SAMPLE_RATE)
    g = make_chroma_guide(tiny_model, stems, every, bare, mask, SAMPLES, 1.0, 1000.0, c_major)
    assert g.targets[melody, :, 10].sum() == 7 and g.targets[melody, :, 120].sum() == 0


def _req(**kw) -> GenerationRequest:
    base = dict(task="generate", prompt="funk at 100 bpm in E minor", num_samples=int(0.5 * SAMPLE_RATE), steps=4,
                seed=3)
    return GenerationRequest(**{**base, **kw})


def test_the_pipeline_guides_when_asked_and_keeps_what_is_given(tiny_model) -> None:
    plain = run_pipeline(tiny_model, _req(chroma_guidance=0.0))
    guided = run_pipeline(tiny_model, _req(chroma_guidance=1.0))
    assert plain.manifest["chroma_guidance"] is None and guided.manifest["chroma_guidance"] == 1.0
    assert run_pipeline(tiny_model, _req(steps=1)).manifest["chroma_guidance"] == DEFAULT_CHROMA_GUIDANCE > 0
    for name, audio in guided.stems.items():
        assert audio.shape == (2, int(0.5 * SAMPLE_RATE)) and np.isfinite(audio).all()
    assert not np.array_equal(guided.stems["bass"], plain.stems["bass"])
    # no chords to follow: nothing guided, the same audio as without the option
    none = run_pipeline(tiny_model, _req(chroma_guidance=1.0, chords="none"))
    assert none.manifest["chroma_guidance"] is None
    np.testing.assert_array_equal(none.stems["bass"],
                                  run_pipeline(tiny_model, _req(chords="none", chroma_guidance=0.0)).stems["bass"])
    # given drums come back exactly as given; the generated bass is guided
    drums = (0.1 * np.sin(np.linspace(0, 200, int(0.5 * SAMPLE_RATE)))).astype(np.float32)[None].repeat(2, 0)
    cond = run_pipeline(tiny_model, _req(stems=["bass"], given={"drums": drums}, chroma_guidance=1.0))
    assert cond.manifest["chroma_guidance"] == 1.0 and cond.manifest["stems_generated"] == ["bass"]
    np.testing.assert_array_equal(cond.stems["drums"], drums)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, 11.0])
def test_bad_chroma_guidance_is_refused(tiny_model, bad) -> None:
    with pytest.raises(InvalidArgument, match="chroma_guidance"):
        run_pipeline(tiny_model, _req(chroma_guidance=bad))
