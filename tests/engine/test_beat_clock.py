"""The U-Net's beat clock: grid phases per frame from the prompt's BPM and the grid offset, in training and in the
pipeline (continuation windows start earlier than the request's sample 0)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from unet_helpers import unet_inputs

from engine.config import HOP, SAMPLE_RATE
from engine.models.unet import BEAT_CLOCK_PERIODS, OmniUNet1d, beat_clock_features
from engine.pipeline import GenerationRequest, run_pipeline
from engine.text.attributes import attribute_tensor
from engine.train.diffusion import LatentSet, init_unet_from
from protocol.errors import ConfigMismatch, InvalidArgument, ModelError

FRAME_S = HOP / SAMPLE_RATE


def test_features_are_the_grid_phases_of_each_frame() -> None:
    bpm = torch.tensor([120.0, float("nan")])
    feats = beat_clock_features(bpm, torch.tensor([0.0, 0.0]), 300, FRAME_S)
    P = len(BEAT_CLOCK_PERIODS)
    assert feats.shape == (2, 2 * P, 300) and feats.dtype == torch.float32
    assert not feats[1].any()  # no tempo: no clock
    beat = BEAT_CLOCK_PERIODS.index(1.0)
    sin, cos = feats[0, beat], feats[0, P + beat]
    # 120 bpm: a beat every 0.5 s = 75 frames; frame 0 on the downbeat, frame 37.5 half a beat later
    assert sin[0].item() == pytest.approx(0.0, abs=1e-6) and cos[0].item() == pytest.approx(1.0)
    assert cos[75].item() == pytest.approx(1.0, abs=1e-5) and cos[150].item() == pytest.approx(1.0, abs=1e-5)
    assert sin[25].item() == pytest.approx(math.sin(2 * math.pi / 3), abs=1e-5)  # a third of a beat
    bar = BEAT_CLOCK_PERIODS.index(4.0)
    assert feats[0, P + bar, 150].item() == pytest.approx(-1.0, abs=1e-5)  # beat 3 of 4: half a bar


def test_features_follow_the_grid_offset() -> None:
    """Frame 0 at an offset of x s has the phases frame x / frame_s has at offset 0; one bar later, the same."""
    bpm = torch.tensor([100.0])
    base = beat_clock_features(bpm, torch.tensor([0.0]), 400, FRAME_S)
    shifted = beat_clock_features(bpm, torch.tensor([90 * FRAME_S]), 300, FRAME_S)
    torch.testing.assert_close(shifted, base[..., 90:390], atol=1e-5, rtol=0)
    bar_s = 4 * 60.0 / 100.0
    far = torch.tensor([1000 * bar_s + 0.3], dtype=torch.float64)  # 40 minutes in: float64 keeps the phase
    torch.testing.assert_close(beat_clock_features(bpm, far, 50, FRAME_S),
                               beat_clock_features(bpm, torch.tensor([0.3]), 50, FRAME_S), atol=1e-5, rtol=0)


def test_the_clock_moves_the_output_with_the_grid_and_only_with_a_tempo(tiny_config) -> None:
    torch.manual_seed(0)
    unet = OmniUNet1d(tiny_config).eval()
    assert unet.beat_clock is not None and len(unet.beat_clock.proj) == len(tiny_config.unet.channels) + 1
    x, t, text = unet_inputs(tiny_config, frames=48, seed=4)
    a = attribute_tensor(["100 bpm E minor"] * 2)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, text, attrs=a, grid_offset=0.3), unet(x, t, text, attrs=a))  # zero init
        for conv in unet.beat_clock.proj:
            torch.nn.init.normal_(conv.weight, std=0.5)
        base = unet(x, t, text, attrs=a, grid_offset=0.0)
        half_beat = unet(x, t, text, attrs=a, grid_offset=0.3)
        assert (half_beat - base).abs().max() > 1e-3
        torch.testing.assert_close(unet(x, t, text, attrs=a, grid_offset=2.4), base, atol=2e-4, rtol=0)  # one bar
        per_item = unet(x, t, text, attrs=a, grid_offset=torch.tensor([0.0, 0.3]))
        torch.testing.assert_close(per_item[0], base[0])
        torch.testing.assert_close(per_item[1], half_beat[1])
        none = attribute_tensor(["no tempo here"] * 2)
        assert torch.equal(unet(x, t, text, attrs=none, grid_offset=0.3), unet(x, t, text, attrs=none))
        # causal mode: the clock is a function of time alone, so no later frame leaks into earlier outputs
        y = unet(x, t, text, causal=True, attrs=a, grid_offset=0.1)
        x2 = x.clone()
        x2[..., 40:] += 3.0
        torch.testing.assert_close(unet(x2, t, text, causal=True, attrs=a, grid_offset=0.1)[..., :40], y[..., :40])
    with pytest.raises(ConfigMismatch):
        unet(x, t, text, attrs=a, grid_offset=torch.zeros(3))


def test_a_clock_needs_the_attributes(tiny_config) -> None:
    with pytest.raises(ConfigMismatch):
        OmniUNet1d(dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet,
                                                                             attribute_conditioning=False)))


def test_init_unet_adds_a_clock_to_a_unet_without_one(tiny_config) -> None:
    old_cfg = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, beat_clock=False))
    torch.manual_seed(1)
    old = OmniUNet1d(old_cfg).eval()
    torch.manual_seed(2)
    new = OmniUNet1d(tiny_config).eval()
    x, t, text = unet_inputs(tiny_config, frames=48, seed=4)
    a = attribute_tensor(["128 bpm F minor"] * 2)
    with torch.no_grad():
        init_unet_from(new, old, "old")
        torch.testing.assert_close(new(x, t, text, attrs=a, grid_offset=0.7), old(x, t, text, attrs=a))
    with pytest.raises(ModelError):
        init_unet_from(old, new, "new")  # dropping a trained clock is refused


def test_training_crops_report_their_start() -> None:
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(4, 3, 200 + 10 * i, generator=g) for i in range(3)]
    ls = LatentSet(z, torch.ones(3, 4, dtype=torch.bool), ["a", "b", "c"], ["0", "1", "2"])
    crops, present, captions, starts = ls.sample(16, 64, torch.Generator().manual_seed(5))
    assert crops.shape == (16, 4, 3, 64) and starts.shape == (16,) and starts.dtype == torch.int64
    assert len(set(starts.tolist())) > 1
    for crop, cap, s in zip(crops, captions, starts.tolist()):
        src = z["abc".index(cap)]
        assert 0 <= s <= src.shape[-1] - 64
        assert torch.equal(crop, src[:, :, s:s + 64])


def test_trainer_batches_carry_the_crop_offsets(tiny_config) -> None:
    """The step's grid offsets are the crops' start times, and the U-Net receives them."""
    from engine.model import StemforgeModel
    from engine.train.diffusion import DiffusionTrainer, DiffusionTrainOptions

    model = StemforgeModel.from_config(tiny_config, seed=0)
    g = torch.Generator().manual_seed(1)
    D = tiny_config.whitened_dim
    ls = LatentSet([torch.randn(4, D, 120, generator=g) for _ in range(2)], torch.ones(2, 4, dtype=torch.bool),
                   ["funk at 100 bpm in E minor"] * 2, ["a", "b"])
    trainer = DiffusionTrainer(model, ls, DiffusionTrainOptions(out="/nonexistent-not-written", batch=4, steps=2, device="cpu",
                                                                seconds=24 * FRAME_S),
                               text_cache=lambda p: (torch.zeros(len(p), 2, tiny_config.text.hidden_size),
                                                     torch.ones(len(p), 2, dtype=torch.bool)))
    seen: list[torch.Tensor] = []
    forward = model.unet.forward

    def spy(*args, grid_offset=None, **kw):
        seen.append(grid_offset)
        return forward(*args, grid_offset=grid_offset, **kw)

    model.unet.forward = spy
    gen_state = trainer.generator.get_state()
    _, _, _, starts = ls.sample(4, trainer.frames, torch.Generator().set_state(gen_state))
    batch, states, mask = trainer.make_batch(0)
    np.testing.assert_allclose(batch.grid_offset.numpy(), starts.double().numpy() * FRAME_S)
    from engine.train.diffusion import batch_loss

    batch_loss(model.unet, batch, states, mask, tiny_config.num_stems)
    got = torch.cat([s.cpu() for s in seen])
    order = torch.cat([idx for _, idx in batch.mode_groups()])
    np.testing.assert_allclose(got.numpy(), batch.grid_offset[order].numpy())


def _spy_offsets(model, monkeypatch) -> list[float]:
    seen: list[float] = []
    forward = model.unet.forward

    def spy(*args, grid_offset=None, **kw):
        seen.append(float(grid_offset))
        return forward(*args, grid_offset=grid_offset, **kw)

    monkeypatch.setattr(model.unet, "forward", spy)
    return seen


def test_pipeline_places_each_window_on_the_grid(tiny_model, monkeypatch) -> None:
    seen = _spy_offsets(tiny_model, monkeypatch)
    n = 2 * HOP * 10
    base = dict(prompt="funk at 100 bpm", steps=2, cfg=1.0, seed=1, sampler="ddim")
    res = run_pipeline(tiny_model, GenerationRequest(task="generate", stems=["bass"], num_samples=n,
                                                     grid_offset=1.25, **base))
    assert seen and set(seen) == {1.25} and res.manifest["grid_offset"] == 1.25
    seen.clear()
    audio = (np.random.default_rng(0).standard_normal((2, n)) * 0.05).astype(np.float32)
    run_pipeline(tiny_model, GenerationRequest(task="inpaint", stems=["bass"], given={"bass": audio},
                                               region=(HOP * 4, HOP * 8), grid_offset=2.0, **base))
    assert set(seen) == {2.0}
    seen.clear()
    # continuation: the window holds the input's last frames (here all of it, left-padded to whole frames)
    short = audio[:, : n - 100]
    run_pipeline(tiny_model, GenerationRequest(task="continue", given={"bass": short}, continue_samples=HOP * 3,
                                               grid_offset=2.0, **base))
    ctx = -(-(n - 100) // HOP) * HOP
    assert ctx - (n - 100) == 100 and seen
    assert seen == pytest.approx([2.0 - 100 / SAMPLE_RATE] * len(seen))  # 100 samples of padding before sample 0
    with pytest.raises(InvalidArgument):
        run_pipeline(tiny_model, GenerationRequest(task="generate", stems=["bass"], num_samples=n,
                                                   grid_offset=float("nan"), **base))
