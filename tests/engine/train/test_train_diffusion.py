"""Diffusion training (engine/train/diffusion.py): loss goes down, resume is exact, export, corpus encoding, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.audio import write_wav
from engine.config import AutoencoderConfig, ModelConfig, UNetConfig
from engine.model import StemforgeModel
from engine.train.diffusion import (
    DiffusionTrainer,
    DiffusionTrainOptions,
    LatentSet,
    TextCache,
    batch_loss,
    encode_corpus,
    load_base_model,
    lr_factor,
    open_corpus,
)
from protocol.errors import CheckpointNotFound, InvalidArgument, ModelError

SMALL = ModelConfig(
    name="test-small",
    whitened_dim=8,
    segment_seconds=0.1,  # 15 latent frames
    autoencoder=AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1),
    unet=UNetConfig(channels=(64, 128), blocks_per_level=1, attention_levels=(False, True), heads=2,
                    cross_attention_dim=32, time_embed_dim=32),
)


@pytest.fixture(scope="module")
def text_encoder(tiny_model):
    return tiny_model.text_encoder  # MiniLM, loaded once per session; frozen


def _model(text_encoder, seed=0):
    model = StemforgeModel.from_config(SMALL, seed=seed)
    model.text_encoder = text_encoder
    return model


def _latents(F=24):
    g = torch.Generator().manual_seed(5)
    t = torch.arange(F, dtype=torch.float32)
    base = torch.stack([torch.sin(t * (0.3 + 0.1 * c)) for c in range(8)])  # (8, F) smooth structure
    z = [base[None].repeat(4, 1, 1) * (1 + i) + 0.1 * torch.randn(4, 8, F, generator=g) for i in range(2)]
    present = torch.tensor([[True, True, True, True], [True, False, True, True]])
    return LatentSet(z, present, ["funk at 100 bpm in E minor", "calm piano ballad in C major"], ["a", "b"])


def _opts(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), steps=30, batch=4, lr=5e-3, warmup=0, device="cpu", threads=1,
                ckpt_minutes=1e6, log_every=1000, ema_decay=0.9)
    base.update(kw)
    return DiffusionTrainOptions(**base)


def _eval_loss(trainer, seed=123):
    gen, trainer.generator = trainer.generator, torch.Generator().manual_seed(seed)
    try:
        with torch.no_grad():
            trainer.unet.eval()
            losses = [float(batch_loss(trainer.unet, *trainer.make_batch(0), SMALL.num_stems)) for _ in range(3)]
    finally:
        trainer.generator = gen
    return float(np.mean(losses))


def test_training_lowers_the_loss_and_exports(tmp_path, text_encoder):
    trainer = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path))
    assert trainer.frames == 15  # 0.1 s segments
    batch, states, mask = trainer.make_batch(0)
    assert batch.x.shape == (4, SMALL.unet_in_channels, 15) and batch.t.shape == (4, 4)
    assert states.shape[0] == 4 and mask.dtype == torch.bool
    before = _eval_loss(trainer)
    summary = trainer.run()
    after = _eval_loss(trainer)
    assert summary["steps"] == 30.0 and np.isfinite(summary["loss"])
    assert after < 0.95 * before, (before, after)
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # linear decay to 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    digest = trainer.export(tmp_path / "model")
    loaded = StemforgeModel.from_pretrained(tmp_path / "model")
    assert loaded.trained and loaded.hash == digest
    assert loaded.meta["training"]["steps"] == 30
    for k, v in loaded.unet.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.equal(v, trainer.ema.shadow[k]), k  # the EMA weights are exported


def test_resume_continues_exactly(tmp_path, text_encoder):
    opts = dict(steps=4, batch=2)
    straight = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path / "a", **opts))
    straight.run()
    first = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path / "b", **opts))
    for _ in range(2):
        first.train_step()
    first.save()
    resumed = DiffusionTrainer(_model(text_encoder, seed=99), _latents(), _opts(tmp_path / "b", resume=True, **opts))
    resumed.run()
    assert resumed.step == 4
    for (k, a), b in zip(straight.unet.state_dict().items(), resumed.unet.state_dict().values()):
        assert torch.equal(a, b), k
    for k, a in straight.ema.shadow.items():
        assert torch.equal(a, resumed.ema.shadow[k]), k


def test_step_timings_are_reported_and_change_nothing(tmp_path, text_encoder):
    timed = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path / "a", steps=4, batch=2))
    plain = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path / "b", steps=4, batch=2))
    timings: dict[str, float] = {}
    for _ in range(2):
        assert timed.train_step(timings) == plain.train_step()
    assert set(timings) == {"data", "text", "forward", "backward", "optimizer", "ema"}
    assert all(v >= 0.0 for v in timings.values()) and timings["forward"] > 0.0
    for (k, a), b in zip(timed.unet.state_dict().items(), plain.unet.state_dict().values()):
        assert torch.equal(a, b), k


def test_openmp_threads_sleep_while_waiting():
    """Importing the trainer before torch makes libgomp's waiting threads sleep (PASSIVE) unless the user chose."""
    import os
    import subprocess
    import sys

    code = "import os, engine.train.diffusion, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "ACTIVE"


def test_lr_schedule_and_options():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == 0.0
    with pytest.raises(InvalidArgument):
        DiffusionTrainOptions(steps=0).validate()


def test_text_cache_matches_batch_encoding(text_encoder):
    cache = TextCache(text_encoder.encode, max_entries=2)
    prompts = ["[bass generation] funk", "[continuation] a long calm piano ballad in C major, 70 bpm"]
    states, mask = cache(prompts)
    ref_states, ref_mask = text_encoder.encode(prompts)
    assert torch.equal(mask, ref_mask.cpu())
    assert torch.allclose(states, ref_states.float().cpu(), atol=2e-2, rtol=1e-3)  # float16 rows
    cache([prompts[0], "third"])
    assert cache.hits == 1 and cache.misses == 3 and len(cache._rows) == 2


def test_encode_corpus_and_cache(tmp_path, text_encoder):
    rng = np.random.default_rng(0)
    root = tmp_path / "songs"
    for song, stems in (("s1", ("bass", "drums", "instrument", "melody")), ("s2", ("bass", "melody"))):
        for s in stems:
            write_wav(root / song / f"{s}.wav", (0.1 * rng.standard_normal((2, 4800))).astype(np.float32))
    (root / "captions.jsonl").write_text("\n".join(json.dumps({"id": i, "caption": f"song {i}"}) for i in ("s1", "s2")))
    model = _model(text_encoder)
    corpus = open_corpus(root, SMALL.stems)
    lat = encode_corpus(model, corpus, tmp_path / "run", torch.device("cpu"))
    assert len(lat) == 2 and lat.ids == ["s1", "s2"]
    assert lat.latents[0].shape == (4, 8, 15)  # 4800 samples / 320
    assert lat.present.tolist() == [[True] * 4, [True, False, False, True]]
    assert len(list((tmp_path / "run").glob("latents-*.safetensors"))) == 1
    again = encode_corpus(model, corpus, tmp_path / "run", torch.device("cpu"))
    assert torch.equal(again.latents[1], lat.latents[1]) and again.captions == ["song s1", "song s2"]


def test_base_model_errors(tmp_path):
    with pytest.raises(CheckpointNotFound):
        load_base_model(tmp_path / "nothing", SMALL)
    StemforgeModel.from_config(SMALL).save_pretrained(tmp_path / "raw")  # whitening never finalised
    with pytest.raises(ModelError):
        load_base_model(tmp_path / "raw", SMALL)


def test_cli_smoke(tmp_path, capsys):
    from daw_bridge.cli import main

    model = StemforgeModel.from_config("tiny", seed=1)
    g = torch.Generator().manual_seed(0)
    model.whitening.update(torch.randn(4, model.config.autoencoder.latent_dim, 200, generator=g, dtype=torch.float64))
    model.whitening.finalize()
    model.save_pretrained(tmp_path / "ae")
    rng = np.random.default_rng(1)
    root = tmp_path / "songs"
    for s in ("bass", "drums", "instrument", "melody"):
        write_wav(root / "x" / f"{s}.wav", (0.1 * rng.standard_normal((2, 9600))).astype(np.float32))
    rc = main(["train", "diffusion", "--data", str(root), "--ae", str(tmp_path / "ae"), "--steps", "2",
               "--batch", "2", "--seconds", "0.1", "--device", "cpu", "--threads", "1", "--out",
               str(tmp_path / "run"), "--export", str(tmp_path / "out")])
    assert rc == 0
    assert "final:" in capsys.readouterr().out
    out = StemforgeModel.from_pretrained(tmp_path / "out")
    assert out.trained and out.meta["training"]["steps"] == 2
    assert torch.equal(out.whitening.W, model.whitening.W.to(out.whitening.W.dtype))
    # the bass-root loss needs chords; stem folders have none: a clear error, nothing exported
    rc = main(["train", "diffusion", "--data", str(root), "--ae", str(tmp_path / "ae"), "--steps", "2",
               "--batch", "2", "--seconds", "0.1", "--device", "cpu", "--threads", "1", "--out",
               str(tmp_path / "run2"), "--export", str(tmp_path / "out2"), "--bass-root-weight", "0.5"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "error [invalid_argument]" in err and "--bass-root-weight and --tonal-weight need" in err, err
    assert not (tmp_path / "out2").exists()


def test_sigterm_stops_after_the_step_and_saves_a_resumable_checkpoint(tmp_path, text_encoder):
    import os
    import signal

    trainer = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path, steps=50))
    step = trainer.train_step

    def step_then_signal(*a, **kw):
        loss = step(*a, **kw)
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by StopFlag: finish this step, save, return
        return loss

    trainer.train_step = step_then_signal
    trainer.run()
    assert trainer.step == 3
    resumed = DiffusionTrainer(_model(text_encoder), _latents(), _opts(tmp_path, steps=50, resume=True))
    resumed.load()
    assert resumed.step == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back


def test_init_unet_continues_from_a_model_checkpoint(tmp_path, text_encoder):
    src = _model(text_encoder, seed=0)
    src.whitening.update(torch.randn(4, 8, 50, generator=torch.Generator().manual_seed(1)))
    src.whitening.finalize(8)
    src.save_pretrained(tmp_path / "partial")
    fresh = load_base_model(tmp_path / "partial", SMALL, seed=7)
    cont = load_base_model(tmp_path / "partial", SMALL, seed=7, init_unet=True)
    src_state = src.unet.state_dict()
    assert all(torch.equal(v, src_state[k]) for k, v in cont.unet.state_dict().items())
    assert not all(torch.equal(v, src_state[k]) for k, v in fresh.unet.state_dict().items())


def test_init_unet_from_takes_the_unet_of_one_model_and_the_autoencoder_of_another(tmp_path, text_encoder):
    def saved(seed, name):
        m = _model(text_encoder, seed=seed)
        m.whitening.update(torch.randn(4, 8, 50, generator=torch.Generator().manual_seed(seed)))
        m.whitening.finalize(8)
        m.save_pretrained(tmp_path / name)
        return m
    unet_src, ae_src = saved(0, "old"), saved(3, "new_ae")
    model = load_base_model(tmp_path / "new_ae", SMALL, seed=7, unet_from=tmp_path / "old")
    old_unet = unet_src.unet.state_dict()
    assert all(torch.equal(v, old_unet[k]) for k, v in model.unet.state_dict().items())
    new_ae = ae_src.autoencoder.state_dict()
    assert all(torch.equal(v, new_ae[k]) for k, v in model.autoencoder.state_dict().items())
    assert torch.equal(model.whitening.state_dict()["mean"], ae_src.whitening.state_dict()["mean"])
    assert not torch.equal(model.whitening.state_dict()["mean"], unet_src.whitening.state_dict()["mean"])
    with pytest.raises(CheckpointNotFound):
        load_base_model(tmp_path / "new_ae", SMALL, unet_from=tmp_path / "missing")
    with pytest.raises(InvalidArgument):
        DiffusionTrainOptions(init_unet=True, init_unet_from=str(tmp_path / "old")).validate()
