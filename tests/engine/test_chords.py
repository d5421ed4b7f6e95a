"""The chord track: chord symbols and plans, per-frame features on the tempo grid, the studio's rendered chords,
the U-Net module, training batches and the pipeline's choice of chords."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from unet_helpers import unet_inputs

from engine.config import HOP, SAMPLE_RATE
from engine.data.studio.arrange import arrange
from engine.data.studio.render import arrangement_metadata, item_harmony
from engine.data.studio.theory import Key
from engine.models.unet import OmniUNet1d
from engine.pipeline import GenerationRequest, run_pipeline
from engine.text.attributes import attribute_tensor
from engine.text.chords import (
    CHORD_FEATURES,
    Harmony,
    chord_features,
    genre_of,
    parse_chord,
    parse_chords,
    plan_chords,
    tonic_first,
)
from engine.train.diffusion import DiffusionTrainer, DiffusionTrainOptions, LatentSet, init_unet_from
from protocol.errors import ConfigMismatch, InvalidArgument, ModelError

FRAME_S = HOP / SAMPLE_RATE


# ---- symbols, plans ------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol,pcs", [("C", (0, 4, 7)), ("Am", (9, 0, 4)), ("F#m7", (6, 9, 1, 4)),
                                        ("Bbmaj7", (10, 2, 5, 9)), ("G7", (7, 11, 2, 5)), ("Bdim", (11, 2, 5)),
                                        ("Ebsus4", (3, 8, 10)), ("-", ())])
def test_chord_symbols(symbol, pcs) -> None:
    assert parse_chord(symbol) == pcs


@pytest.mark.parametrize("bad", ["H", "Cx9", "Am/E", "", "7"])
def test_bad_chord_symbols_name_the_symbol(bad) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_chords(bad if bad else "   ")
    if bad:
        assert repr(bad) in str(e.value)


def test_chord_lists_and_names() -> None:
    h = parse_chords("Am7 | D7, Gmaj7 -", beats_per_chord=2)
    assert h.beats_per_chord == 2.0 and len(h.chords) == 4
    assert h.names() == ["A min7", "D 7", "G maj7", "-"]
    assert h.to_dict()["pitch_classes"][0] == [9, 0, 4, 7]
    with pytest.raises(InvalidArgument):
        parse_chords("C", beats_per_chord=0)
    with pytest.raises(InvalidArgument):
        parse_chords(" ".join(["C"] * 65))


def test_genre_of_reads_the_first_genre_named() -> None:
    assert genre_of("Moody funk in C minor, 100 BPM") == "funk"
    assert genre_of("Relaxed lo-fi at 86 BPM. A jazz kit and a fingered bass") == "lo-fi"
    assert genre_of("a pop ballad in D major") == "pop ballad"
    assert genre_of("Dark drum and bass in F minor") == "drum and bass"
    assert genre_of("an ambient pad") is None


def test_plans_are_diatonic_deterministic_and_need_a_key() -> None:
    a = plan_chords("funk at 100 bpm in E minor", seed=3)
    assert a == plan_chords("funk at 100 bpm in E minor", seed=3)
    scale = set(Key(4, "minor").scale_pcs)
    assert all(set(c) <= scale for c in a.chords) and a.beats_per_chord == 4.0
    seen = {plan_chords("funk at 100 bpm in E minor", seed=s) for s in range(40)}
    assert len(seen) > 1  # the seed picks among the genre's progressions
    assert plan_chords("funk at 100 bpm", seed=3) is None
    major = plan_chords("a house track in Ab major", seed=1)
    assert all(set(c) <= set(Key(8, "major").scale_pcs) for c in major.chords)


def test_planned_progressions_begin_on_the_tonic_chord() -> None:
    assert tonic_first((5, 3, 0, 4)) == (0, 4, 5, 3)
    assert tonic_first((1, 4, 0, 0)) == (0, 0, 1, 4)
    assert tonic_first((2, 5, 1, 4)) == (2, 5, 1, 4)  # no tonic chord: unchanged
    for prompt, key in (("lo-fi in Eb major", Key(3, "major")), ("house in Bb major", Key(10, "major")),
                        ("jazz swing in B major", Key(11, "major")), ("funk in C major", Key(0, "major")),
                        ("lo-fi in C# minor", Key(1, "minor")), ("pop in B minor", Key(11, "minor")),
                        ("an ambient pad in F# major", Key(6, "major"))):
        plans = {plan_chords(prompt, seed=s) for s in range(30)}
        tonic = key.chord(0, 3).pcs
        for plan in plans:  # the first bar sounds the tonic triad (a seventh chord on it included)
            assert set(tonic) <= set(plan.chords[0]) and plan.chords[0][0] == key.tonic, (prompt, plan.names())


# ---- features ------------------------------------------------------------------------------------
def test_features_change_chord_on_the_grid() -> None:
    h = parse_chords("C Am")
    f = chord_features(h, 120.0, 0.0, 700, FRAME_S)  # 120 bpm: a bar = 2 s = 300 frames of 1/150 s
    assert f.shape == (CHORD_FEATURES, 700) and f.dtype == torch.float32
    c = torch.zeros(24)
    c[[0, 4, 7]] = 1
    c[12] = 1
    am = torch.zeros(24)
    am[[9, 0, 4]] = 1
    am[12 + 9] = 1
    torch.testing.assert_close(f[:, 0], c)
    torch.testing.assert_close(f[:, 299], c)
    torch.testing.assert_close(f[:, 300], am)
    torch.testing.assert_close(f[:, 599], am)
    torch.testing.assert_close(f[:, 600], c)  # cyclic
    shifted = chord_features(h, 120.0, 100 * FRAME_S, 400, FRAME_S)
    torch.testing.assert_close(shifted, f[:, 100:500])
    assert not chord_features(h, None, 0.0, 50, FRAME_S).any()
    assert not chord_features(None, 120.0, 0.0, 50, FRAME_S).any()
    assert not chord_features(parse_chords("-"), 120.0, 0.0, 50, FRAME_S).any()


def test_studio_items_give_back_the_chords_they_were_rendered_with() -> None:
    """The chord sounding at each comping note's onset holds that note, for an item with and without the
    chords_per_bar field (older renders recover it from their seed), in a transposed copy too."""
    checked = 0
    for seed in (11, 12, 13, 14):
        for transpose in (0, 4):
            arr = arrange(seed, 8.0, transpose=transpose)
            meta = {**arrangement_metadata(arr), "seed": seed, "seconds": 8.0}
            h = item_harmony(meta)
            assert h == item_harmony({k: v for k, v in meta.items() if k != "chords_per_bar"})
            assert h.beats_per_chord == 4.0 / arr.chords_per_bar
            for note in arr.parts["instrument"].notes:
                slot = int(np.floor(round(note.start * 4) / 4 / h.beats_per_chord)) % len(h.chords)
                assert note.pitch % 12 in h.chords[slot], (seed, note)
                checked += 1
    assert checked > 50
    assert item_harmony({"genre": "funk", "key": "E", "mode": "minor"}) is None


# ---- U-Net ---------------------------------------------------------------------------------------
def test_the_chord_track_starts_at_zero_and_then_moves_the_output(tiny_config) -> None:
    torch.manual_seed(0)
    unet = OmniUNet1d(tiny_config).eval()
    assert unet.chord_track is not None
    x, t, text = unet_inputs(tiny_config, frames=48, seed=4)
    a = attribute_tensor(["100 bpm E minor"] * 2)
    ch = torch.stack([chord_features(parse_chords("Em C"), 100.0, 0.0, 48, FRAME_S)] * 2)
    with torch.no_grad():
        plain = unet(x, t, text, attrs=a)
        torch.testing.assert_close(unet(x, t, text, attrs=a, chords=ch), plain)  # zero-initialised
        for conv in unet.chord_track.proj:
            conv.weight.normal_(0, 0.05)
        moved = unet(x, t, text, attrs=a, chords=ch)
        assert (moved - plain).abs().max() > 1e-3
        torch.testing.assert_close(unet(x, t, text, attrs=a), unet(x, t, text, attrs=a, chords=torch.zeros_like(ch)))
        with pytest.raises(ConfigMismatch):
            unet(x, t, text, attrs=a, chords=ch[:, :12])
        with pytest.raises(ConfigMismatch):
            unet(x, t, text, attrs=a, chords=torch.zeros(2, 24, 60))


def test_a_unet_without_chords_starts_one_with_chords(tiny_config) -> None:
    old_cfg = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, chord_conditioning=False))
    old, new = OmniUNet1d(old_cfg).eval(), OmniUNet1d(tiny_config).eval()
    init_unet_from(new, old, "old")
    x, t, text = unet_inputs(tiny_config, frames=32, seed=1)
    a = attribute_tensor(["90 bpm A minor"] * 2)
    ch = torch.stack([chord_features(parse_chords("Am G"), 90.0, 0.0, 32, FRAME_S)] * 2)
    with torch.no_grad():
        torch.testing.assert_close(new(x, t, text, attrs=a, chords=ch), old(x, t, text, attrs=a))
    with pytest.raises(ModelError):
        init_unet_from(old, new, "new")  # the other way would drop trained weights


# ---- training batches ----------------------------------------------------------------------------
def test_training_batches_carry_each_items_chords_unless_the_caption_is_dropped(tiny_model, tmp_path) -> None:
    cfg = tiny_model.config
    k, D = cfg.num_stems, cfg.whitened_dim
    g = torch.Generator().manual_seed(0)
    h = [parse_chords("C F"), None]
    ls = LatentSet([torch.randn(k, D, 150, generator=g) for _ in range(2)], torch.ones(2, k, dtype=torch.bool),
                   ["funk at 120 bpm in C major", "funk at 120 bpm in C major"], ["a", "b"], h)
    opts = DiffusionTrainOptions(data="x", ae="x", out=str(tmp_path), steps=10, batch=16, seconds=150 * FRAME_S,
                                 chord_dropout=0.0)
    tr = DiffusionTrainer(tiny_model, ls, opts)
    drawn: list[int] = []
    batch = tr._latent_batch(0)
    assert batch.chords is not None and batch.chords.shape == (16, CHORD_FEATURES, 150)
    # redo the draw to know which item each row is
    tr.generator.manual_seed(0)
    ls.sample(16, 150, tr.generator, drawn)
    for b, i in enumerate(drawn):
        keyed = "C major" in batch.prompts[b]
        if h[i] is None or not keyed:
            assert not batch.chords[b].any()
        else:
            want = chord_features(h[i], 120.0, float(batch.grid_offset[b]), 150, FRAME_S)
            torch.testing.assert_close(batch.chords[b], want)
    assert any(h[i] is not None for i in drawn)
    with pytest.raises(InvalidArgument):
        LatentSet(ls.latents, ls.present, ls.captions, ls.ids, [None])


# ---- the pipeline --------------------------------------------------------------------------------
def _req(**kw) -> GenerationRequest:
    base = dict(task="generate", prompt="funk at 100 bpm in E minor", stems=["bass", "melody"],
                num_samples=int(0.4 * SAMPLE_RATE), steps=2, seed=5)
    return GenerationRequest(**{**base, **kw})


def test_the_pipeline_plans_takes_or_leaves_out_chords(tiny_model) -> None:
    planned = run_pipeline(tiny_model, _req()).manifest
    assert planned["chords_source"] == "planned"
    assert planned["chords"] == plan_chords("funk at 100 bpm in E minor", seed=5).to_dict()
    given = run_pipeline(tiny_model, _req(chords="Em7 A7", chord_beats=2)).manifest
    assert given["chords_source"] == "given" and given["chords"]["chords"] == ["E min7", "A 7"]
    assert given["chords"]["beats_per_chord"] == 2.0
    off = run_pipeline(tiny_model, _req(chords="none")).manifest
    assert off["chords"] is None and off["chords_source"] is None
    nokey = run_pipeline(tiny_model, _req(prompt="funk at 100 bpm")).manifest
    assert nokey["chords"] is None
    bass = np.zeros((2, int(0.4 * SAMPLE_RATE)), dtype=np.float32)
    with_bass = run_pipeline(tiny_model, _req(stems=["melody"], given={"bass": bass})).manifest
    assert with_bass["chords"] is None  # a pitched stem given: its harmony rules, nothing is planned
    with pytest.raises(InvalidArgument, match="Q7"):
        run_pipeline(tiny_model, _req(chords="C Q7"))


def test_a_model_without_a_chord_track_refuses_chords(tiny_config) -> None:
    from engine.model import StemforgeModel

    cfg = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, chord_conditioning=False))
    model = StemforgeModel.from_config(cfg, seed=0, device="cpu").eval()
    assert run_pipeline(model, _req()).manifest["chords"] is None  # nothing planned for it
    with pytest.raises(InvalidArgument, match="chord track"):
        run_pipeline(model, _req(chords="Em C"))


def test_configs_without_a_chord_track_serialise_as_before(tiny_config) -> None:
    """Checkpoints saved before the flag existed re-save to the same config bytes; the flag reads back as off."""
    from engine.config import ModelConfig

    old = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, chord_conditioning=False))
    assert "chord_conditioning" not in old.to_dict()["unet"]
    assert ModelConfig.from_dict(old.to_dict()) == old
    assert tiny_config.to_dict()["unet"]["chord_conditioning"] is True
    assert ModelConfig.from_dict(tiny_config.to_dict()) == tiny_config


def test_studio_captions_read_as_their_own_genre() -> None:
    """The planner picks its progressions by the genre a prompt names; studio captions name it (the model card's
    figure for the train and held-out captions comes from the same reading)."""
    from engine.data.studio.render import caption_for

    hits = total = 0
    for seed in range(300):
        arr = arrange(seed, 8.0)
        meta = arrangement_metadata(arr)
        hits += genre_of(caption_for(meta, seed)) == arr.genre
        total += 1
    assert hits / total >= 0.98, (hits, total)


def test_chord_guidance_runs_full_text_only_and_unconditional_branches(tiny_model, monkeypatch) -> None:
    seen: list[dict] = []
    forward = tiny_model.unet.forward

    def spy(x, t, text, text_mask=None, **kw):
        seen.append({"batch": x.shape[0], "text": text.clone(), "chords": kw["chords"], "attrs": kw["attrs"]})
        return forward(x, t, text, text_mask, **kw)

    monkeypatch.setattr(tiny_model.unet, "forward", spy)
    guided = run_pipeline(tiny_model, _req(chord_cfg=6.0)).manifest
    assert guided["chord_cfg"] == 6.0 and guided["chords_source"] == "planned"
    assert [s["batch"] for s in seen] == [3] * len(seen) and seen
    call = seen[0]
    harmony = plan_chords("funk at 100 bpm in E minor", seed=5)
    want = chord_features(harmony, 100.0, 0.0, call["chords"].shape[-1], FRAME_S)
    torch.testing.assert_close(call["chords"][0], want.to(call["chords"].dtype))  # full: text + chords
    assert not call["chords"][1:].any()  # text-only and unconditional: no chords
    torch.testing.assert_close(call["text"][0], call["text"][1])  # the full prompt in both conditioned branches
    assert not torch.equal(call["text"][0], call["text"][2])  # the unconditional caption in the third
    torch.testing.assert_close(call["attrs"][0], call["attrs"][1])
    for kw, batch in ((dict(chord_cfg=3.0), 2), (dict(chord_cfg=6.0, chords="none"), 2), (dict(chord_cfg=6.0, cfg=1.0), 2)):
        seen.clear()
        manifest = run_pipeline(tiny_model, _req(**kw)).manifest
        assert {s["batch"] for s in seen} == {batch}, kw
        assert manifest["chord_cfg"] == (6.0 if kw.get("cfg") == 1.0 else None), kw
    with pytest.raises(InvalidArgument, match="chord_cfg"):
        run_pipeline(tiny_model, _req(chord_cfg=float("nan")))
