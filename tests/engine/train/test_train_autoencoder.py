"""Autoencoder training: loss decreases on a fixed clip, resumable checkpoints, export."""

import json

import pytest
import torch

from engine.config import AutoencoderConfig
from engine.train.autoencoder import AutoencoderTrainer, TrainOptions, export, load_trained
from engine.train.common import load_checkpoint
from engine.train.crops import CropSampler
from stem_renders import write_item
from protocol.errors import CheckpointNotFound, InvalidArgument

SMALL = AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("renders")
    for i in range(2):
        write_item(root / "train" / f"item{i}", i)
    write_item(root / "heldout" / "item9", 9)
    return root


def _opts(data, out, **kw) -> TrainOptions:
    base = dict(data=str(data / "train"), out=str(out), steps=3, batch=2, seconds=0.1, threads=1, lr=2e-3,
                warmup=1, eval_clips=2, eval_seconds=0.1, ckpt_minutes=60, eval_minutes=60, device="cpu")
    base.update(kw)
    return TrainOptions(**base)


def test_training_steps_lower_loss_on_fixed_clip(data, tmp_path) -> None:
    trainer = AutoencoderTrainer(_opts(data, tmp_path, mask_prob=0.0, lr=3e-3), cfg=SMALL)
    clip = CropSampler(data / "train").fixed_clips(2, 3200)

    def loss() -> float:
        with torch.no_grad():
            return float(trainer.losses(clip)["total"])

    before = loss()
    for _ in range(8):
        trainer.step(clip)
    after = loss()
    assert trainer.step_count == 8
    assert after < 0.85 * before, (before, after)


def test_resume_continues_step_and_optimizer(data, tmp_path) -> None:
    first = AutoencoderTrainer(_opts(data, tmp_path / "run"), cfg=SMALL)
    result = first.run()
    assert "eval_lsd_db" in result and result["eval_lsd_db"] > 0
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 3
    assert (tmp_path / "run" / "train.log").read_text().count("checkpoint saved") == 1
    assert len((tmp_path / "run" / "eval.jsonl").read_text().splitlines()) == 1

    second = AutoencoderTrainer(_opts(data, tmp_path / "run", steps=5, resume=True), cfg=SMALL)
    second.load_state_dict(load_checkpoint(tmp_path / "run"))
    assert second.step_count == 3
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    opt_a, opt_b = first.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys() and int(opt_b[0]["step"]) == 3
    assert torch.equal(opt_a[0]["exp_avg_sq"], opt_b[0]["exp_avg_sq"])

    third = AutoencoderTrainer(_opts(data, tmp_path / "run", steps=5, resume=True), cfg=SMALL)
    third.run()
    assert load_checkpoint(tmp_path / "run")["step"] == 5
    assert int(third.optimizer.state_dict()["state"][0]["step"]) == 5

    with pytest.raises(CheckpointNotFound):
        AutoencoderTrainer(_opts(data, tmp_path / "empty", resume=True), cfg=SMALL).run()


def test_export_writes_ema_weights(data, tmp_path) -> None:
    trainer = AutoencoderTrainer(_opts(data, tmp_path / "run", steps=2), cfg=SMALL)
    trainer.run()
    files = export(tmp_path / "run", tmp_path / "export")
    assert sorted(p.name for p in files) == ["autoencoder.json", "autoencoder.safetensors", "config.json"]
    assert json.loads((tmp_path / "export" / "autoencoder.json").read_text())["hidden"] == 32
    exported = load_trained(tmp_path / "export")
    for name, value in exported.state_dict().items():
        if name in trainer.ema.shadow:
            assert torch.equal(value, trainer.ema.shadow[name]), name
    x = torch.randn(1, 2, 1000) * 0.1
    with torch.no_grad():
        assert exported.decode(exported.encode(x), 1000).shape == (1, 2, 1000)


def test_whitening_statistics_stored_beside_weights(data, tmp_path) -> None:
    from safetensors.torch import load_file

    from engine.train.whitening_stats import compute_whitening

    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=1), cfg=SMALL).run()
    path = compute_whitening(tmp_path / "run", data / "train", k=6, seconds=0.25, threads=1)
    assert path == tmp_path / "run" / "whitening.safetensors"
    stats = load_file(str(path))
    # 10 files x 0.5 s = 75 frames each (two 0.25 s chunks of ceil(12000 / 320) = 38 frames)
    assert int(stats["count"]) == 10 * 2 * 38
    assert stats["W"].shape == (8, 6) and stats["W_inv"].shape == (6, 8)
    with pytest.raises(InvalidArgument):
        compute_whitening(tmp_path / "run", data / "train", k=9, threads=1)
    files = export(tmp_path / "run", tmp_path / "export")
    assert "whitening.safetensors" in [p.name for p in files]


def test_sigterm_stops_after_the_step_and_saves(data, tmp_path) -> None:
    import os
    import signal

    trainer = AutoencoderTrainer(_opts(data, tmp_path / "run", steps=1000), cfg=SMALL)
    original = trainer.data.sample
    calls = []

    def sample_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # during the third step (the first call draws the output-bias init batch)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    trainer.data.sample = sample_then_signal
    trainer.run()
    assert load_checkpoint(tmp_path / "run")["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_export_skips_stale_whitening_and_computes_fresh(data, tmp_path) -> None:
    from engine.train.whitening_stats import compute_whitening, whitening_step

    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=1), cfg=SMALL).run()
    compute_whitening(tmp_path / "run", data / "train", k=6, seconds=0.25, threads=1)
    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=2, resume=True), cfg=SMALL).run()  # weights moved on
    names = [p.name for p in export(tmp_path / "run", tmp_path / "a")]
    assert "whitening.safetensors" not in names
    names = [p.name for p in export(tmp_path / "run", tmp_path / "b", whitening_data=data / "train")]
    assert "whitening.safetensors" in names and whitening_step(tmp_path / "b" / "whitening.safetensors") == 2
    assert load_trained(tmp_path / "b").trained_step == 2


def test_learning_rate_schedule(data, tmp_path) -> None:
    trainer = AutoencoderTrainer(_opts(data, tmp_path, lr=1e-3, warmup=10, decay_steps=110, lr_min=1e-4), cfg=SMALL)
    assert trainer.lr_at(0) == pytest.approx(1e-4)  # warmup 1/10
    assert trainer.lr_at(10) == pytest.approx(1e-3)
    assert trainer.lr_at(60) == pytest.approx(5.5e-4)  # half way down the cosine
    assert trainer.lr_at(110) == pytest.approx(1e-4) and trainer.lr_at(10_000) == pytest.approx(1e-4)


def test_init_from_an_export_starts_from_its_weights_and_uses_the_given_resolutions(data, tmp_path) -> None:
    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=2), cfg=SMALL).run()
    export(tmp_path / "run", tmp_path / "export")
    source = load_trained(tmp_path / "export").state_dict()
    fine = AutoencoderTrainer(_opts(data, tmp_path / "fine", steps=0, init_from=str(tmp_path / "export"),
                                    stft_resolutions=((256, 64), (4096, 1024))), cfg=SMALL)
    assert fine.stft_loss.resolutions == ((256, 64), (4096, 1024))
    fine.run()  # 0 steps: the saved weights are the source's, not a fresh init
    tuned = load_trained(tmp_path / "fine", ema=False).state_dict()
    assert source.keys() == tuned.keys()
    for name, value in source.items():
        assert torch.equal(value, tuned[name]), name
    other = AutoencoderConfig(latent_dim=4, hidden=32, encoder_depth=1, decoder_depth=1)
    with pytest.raises(InvalidArgument, match="init-from"):
        AutoencoderTrainer(_opts(data, tmp_path / "bad", steps=0, init_from=str(tmp_path / "export")),
                           cfg=other).run()


def test_cli_parses_stft_resolutions() -> None:
    import argparse

    from engine.commands.train import _resolutions

    assert _resolutions("512:128,8192:2048") == ((512, 128), (8192, 2048))
    for bad in ("512", "512:0", "8:4", "a:b", "512:1024"):
        with pytest.raises(argparse.ArgumentTypeError):
            _resolutions(bad)


def test_decoder_only_fine_tune_adds_a_tonal_path_and_keeps_the_encoder(data, tmp_path) -> None:
    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=2), cfg=SMALL).run()
    export(tmp_path / "run", tmp_path / "export")
    source = load_trained(tmp_path / "export").state_dict()
    fine = AutoencoderTrainer(_opts(data, tmp_path / "fine", steps=4, init_from=str(tmp_path / "export"),
                                    tonal_head=True, freeze_encoder=True, mask_prob=0.0), cfg=SMALL)
    assert fine.cfg.tonal_head and fine.model.tonal is not None
    fine.run()
    tuned = load_trained(tmp_path / "fine", ema=False)
    assert tuned.cfg.tonal_head and json.loads((tmp_path / "fine" / "autoencoder.json").read_text())["tonal_head"]
    state = tuned.state_dict()
    for name, value in source.items():
        frozen = name.startswith(("enc_", "to_latent."))
        assert torch.equal(value, state[name]) == frozen, name
    assert state["tonal.weight"].abs().sum() > 0  # zero at the start, trained since
    clip = CropSampler(data / "heldout").fixed_clips(1, 3200)
    with torch.no_grad():  # the same latents as the source's: a U-Net trained on them stays valid
        assert torch.equal(tuned.encode(clip), load_trained(tmp_path / "export").encode(clip))


def test_instantaneous_frequency_loss_teaches_the_tonal_path_a_tone(data, tmp_path) -> None:
    import math

    cfg = AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1, tonal_head=True)
    trainer = AutoencoderTrainer(_opts(data, tmp_path, if_weight=1.0, mask_prob=0.0, lr=3e-3), cfg=cfg)
    t = torch.arange(9600) / 48000
    clip = (0.3 * torch.sin(2 * math.pi * 277.2 * t)).expand(2, 2, -1).contiguous()
    with torch.no_grad():
        first = float(trainer.losses(clip)["if"])
    for _ in range(25):
        trainer.step(clip)
    with torch.no_grad():
        last = float(trainer.losses(clip)["if"])
        _, (dev, gate) = trainer.model.decode_with_deviation(trainer.model.encode(clip), clip.shape[-1])
    assert last < 0.5 * first, (first, last)
    assert abs(float(dev[0, 7, 5:-5].mean()) - (277.2 / 37.5 - 7)) < 0.15
    assert float(torch.sigmoid(gate[0, 7, 5:-5]).mean()) > 0.3  # a held tone: the gate opens (from 0.12)
    plain = AutoencoderTrainer(_opts(data, tmp_path / "plain", if_weight=1.0), cfg=SMALL)
    assert "if" not in plain.losses(clip)  # no tonal path: nothing to teach


def test_fine_tune_adds_the_low_band_and_the_smoothness_loss(data, tmp_path) -> None:
    AutoencoderTrainer(_opts(data, tmp_path / "run", steps=2), cfg=SMALL).run()
    export(tmp_path / "run", tmp_path / "export")
    fine = AutoencoderTrainer(_opts(data, tmp_path / "fine", steps=3, init_from=str(tmp_path / "export"),
                                    lowband_fft=8192, latent_smooth=2.0, mask_prob=0.0), cfg=SMALL)
    assert fine.cfg.lowband_fft == 8192 and fine.model.enc_low is not None
    clip = CropSampler(data / "heldout").fixed_clips(2, 3200)
    plain = AutoencoderTrainer(_opts(data, tmp_path / "plain", steps=0, init_from=str(tmp_path / "export"),
                                     mask_prob=0.0), cfg=SMALL)
    fine.init_weights_from(tmp_path / "export")  # what run() does first
    plain.init_weights_from(tmp_path / "export")
    torch.manual_seed(0)
    terms = fine.losses(clip)
    torch.manual_seed(0)
    base = plain.losses(clip)
    with torch.no_grad():
        z = fine.model.encode(clip)
    diff = (z[..., 1:] - z[..., :-1]).square().mean()
    torch.testing.assert_close(terms["latent_diff"], diff)
    torch.testing.assert_close(terms["total"], base["total"] + 2.0 * diff)  # same weights until trained
    assert "latent_diff" not in base
    fine.run()
    tuned = load_trained(tmp_path / "fine", ema=False)
    assert tuned.cfg.lowband_fft == 8192
    assert json.loads((tmp_path / "fine" / "autoencoder.json").read_text())["lowband_fft"] == 8192
    assert tuned.state_dict()["enc_low.weight"].abs().sum() > 0  # zero at the start, trained since
