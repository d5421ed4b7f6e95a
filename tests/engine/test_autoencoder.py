"""AudioAutoencoder contract: exact shapes and lengths, stereo, latent masking, STFT pair, metrics."""

import math

import pytest
import torch

from engine.config import AutoencoderConfig, tiny
from engine.models.autoencoder import (AudioAutoencoder, SameSTFT, instantaneous_deviation, integrated_phase,
                                       mask_latent_frames, steadiness)
from engine.models.losses import MultiResolutionSTFTLoss, compressed_complex_loss, log_spectral_distance, si_sdr
from protocol.errors import ConfigMismatch, InvalidAudio


@pytest.fixture(scope="module")
def model() -> AudioAutoencoder:
    torch.manual_seed(0)
    return AudioAutoencoder(tiny().autoencoder).eval()


@pytest.mark.parametrize("n", [1, 319, 320, 321, 48000 + 7])
def test_exact_round_trip_length(model: AudioAutoencoder, n: int) -> None:
    x = torch.randn(1, 2, n, generator=torch.Generator().manual_seed(n)) * 0.1
    with torch.no_grad():
        z = model.encode(x)
        y = model.decode(z, n)
    assert z.shape == (1, 32, math.ceil(n / 320))
    assert y.shape == (1, 2, n)
    assert torch.isfinite(y).all()
    assert z.abs().max() < 1.0  # tanh-bounded latent


def test_stereo_batch_and_forward(model: AudioAutoencoder) -> None:
    x = torch.randn(3, 2, 4000) * 0.1
    x[:, 1] = 0.0  # right channel silent: channels must stay separate
    with torch.no_grad():
        y, z = model(x, mask_prob=0.05)
    assert y.shape == (3, 2, 4000) and z.shape == (3, 32, 13)
    # decode pads when asked for more samples than F * hop
    with torch.no_grad():
        longer = model.decode(z, 13 * 320 + 5)
    assert longer.shape == (3, 2, 13 * 320 + 5)
    assert torch.all(longer[..., 13 * 320:] == 0)


def test_bad_input_raises(model: AudioAutoencoder) -> None:
    with pytest.raises(InvalidAudio):
        model.encode(torch.zeros(1, 1, 100))  # mono
    with pytest.raises(InvalidAudio):
        model.encode(torch.zeros(1, 2, 0))
    with pytest.raises(ConfigMismatch):
        model.decode(torch.zeros(1, 16, 4), 1280)
    with pytest.raises(InvalidAudio):
        model.decode(torch.zeros(1, 32, 4), 0)


def test_same_stft_is_exactly_invertible() -> None:
    stft = SameSTFT(1280, 320)
    x = torch.randn(3, 320 * 37)
    spec = stft(x)
    assert spec.shape == (3, 641, 37)
    assert torch.allclose(stft.inverse(spec), x, atol=1e-5)


def test_latent_mask_fraction_exact_per_item() -> None:
    z = torch.randn(4, 32, 600)
    zm, mask = mask_latent_frames(z, 0.05, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 600)
    assert mask.sum(dim=1).tolist() == [30, 30, 30, 30]  # 5% of 600 frames, each item
    assert torch.all(zm[:, :, mask[0]][0] == 0)
    assert torch.equal(zm.transpose(1, 2)[~mask], z.transpose(1, 2)[~mask])  # the rest untouched


def test_latent_mask_expected_fraction_short_sequences() -> None:
    z = torch.ones(4000, 1, 10)  # 0.5 frames expected per item: stochastic rounding keeps the mean at 5%
    _, mask = mask_latent_frames(z, 0.05, torch.Generator().manual_seed(1))
    assert abs(mask.float().mean().item() - 0.05) < 0.01
    with pytest.raises(ConfigMismatch):
        mask_latent_frames(z, 1.5)


def test_metrics_reference_values() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 9600, generator=g) * 0.1
    assert log_spectral_distance(x, x).item() == 0.0
    # 6.02 dB gain error on every bin above the floor -> LSD = 20 log10(2)
    assert log_spectral_distance(2 * x, x).item() == pytest.approx(20 * math.log10(2), abs=1e-3)
    # silence vs. silence: both at the -100 dB floor
    z = torch.zeros(1, 2, 4800)
    assert log_spectral_distance(z, z).item() == 0.0
    assert si_sdr(0.5 * x, x).item() > 60
    noise = torch.randn(2, 2, 9600, generator=g)
    assert si_sdr(noise, x).item() < -10
    terms = MultiResolutionSTFTLoss(lsd_weight=1.0)(x, x)
    assert terms["loss"].item() == pytest.approx(0.0, abs=1e-3)


def test_config_validation() -> None:
    with pytest.raises(ConfigMismatch):
        AudioAutoencoder(AutoencoderConfig(n_fft=321))


def test_lsd_matches_the_evaluation_suite() -> None:
    metrics = pytest.importorskip("engine.eval.metrics")
    g = torch.Generator().manual_seed(4)
    ref = torch.randn(1, 2, 12000, generator=g) * 0.05
    ref[..., 6000:] = 0.0  # half silence: the -100 dB floor matters
    est = ref * 0.7 + torch.randn(1, 2, 12000, generator=g) * 1e-4
    ours = log_spectral_distance(est, ref).item()
    theirs = metrics.log_spectral_distance(ref[0].numpy(), est[0].numpy())
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_compressed_complex_loss_sees_phase_that_power_losses_miss() -> None:
    sr = 48000
    t = torch.arange(sr // 2) / sr
    ref = torch.sin(2 * math.pi * 277.2 * t).expand(1, 2, -1).contiguous() * 0.3
    shifted = torch.sin(2 * math.pi * 277.2 * t + math.pi / 2).expand(1, 2, -1).contiguous() * 0.3
    assert float(compressed_complex_loss(ref, ref)) == 0.0
    power = MultiResolutionSTFTLoss()(shifted, ref)["sc"]  # spectral convergence: magnitudes only
    phase = compressed_complex_loss(shifted, ref)
    # a quarter-period phase shift: |c(Y) - c(X)|^2 = 2 |c(X)|^2 on the tone's bins; the power spectra agree
    ratio = phase / compressed_complex_loss(torch.zeros_like(ref), ref)
    assert 1.9 < float(ratio) < 2.1, float(ratio)
    assert float(power) < 0.05
    # compression: a partial 40 dB down still weighs (100x quieter -> 100^0.3 ~ 4x smaller compressed amplitude)
    quiet_ref, quiet_shift = ref * 0.01, shifted * 0.01
    rel = compressed_complex_loss(quiet_shift, quiet_ref) / compressed_complex_loss(shifted, ref)
    assert 0.3 * 0.01 ** 0.6 < float(rel) < 3 * 0.01 ** 0.6


def test_integrated_phase_advances_by_the_partial_frequency() -> None:
    k, f = 9, 50
    dev = torch.zeros(1, k, f)
    dev[0, 3] = 0.25
    phase = integrated_phase(dev, n_fft=1280, hop=320).double()
    step = phase[0, :, 1:] - phase[0, :, :-1]  # per-frame advance, compared on the unit circle
    expected = 2 * math.pi * 320 / 1280 * torch.arange(k, dtype=torch.float64)
    expected[3] = 2 * math.pi * 320 / 1280 * 3.25
    assert (torch.polar(torch.ones_like(step), step) - torch.polar(torch.ones_like(step), expected[:, None])
            ).abs().max() < 1e-5
    # float64 accumulation: a frame a million hops in keeps the exact bin-centre phase
    far = integrated_phase(torch.zeros(1, 2, 1_000_003), 1280, 320)[0, 1, -1]
    assert abs(float(far) - (1_000_002 % 4) * math.pi / 2) < 1e-5


def _peak_hz(wave: torch.Tensor) -> float:
    spec = torch.fft.rfft(wave * torch.hann_window(wave.shape[-1], periodic=False, dtype=wave.dtype)).abs()
    return float(spec.argmax()) * 48000 / wave.shape[-1]


def test_integrated_phase_synthesises_a_steady_tone_between_the_frame_rate_harmonics() -> None:
    # one bin (7: 262.5 Hz) of a 1280 / hop 320 spectrum, constant magnitude over 1 s
    stft, frames, target = SameSTFT(1280, 320), 150, 277.2
    spec_mag = torch.zeros(1, 641, frames)
    spec_mag[0, 7] = 50.0
    frozen = stft.inverse(torch.polar(spec_mag, torch.zeros_like(spec_mag)))[0]  # frame-wise constant phase
    assert abs(_peak_hz(frozen) - 300.0) <= 2.0  # a multiple of 48000 / 320 = 150 Hz, not the bin's 262.5 Hz
    dev = torch.zeros(1, 641, frames)
    dev[0, 7] = target / 37.5 - 7
    steady = stft.inverse(torch.polar(spec_mag, integrated_phase(dev, 1280, 320)))[0]
    assert abs(_peak_hz(steady) - target) <= 1.0


def test_tonal_head_starts_as_a_small_share_and_only_its_gate_learns_from_the_spectrum() -> None:
    cfg = AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1, tonal_head=True)
    model = AudioAutoencoder(cfg)
    assert model.tonal is not None and model.tonal.weight.abs().sum() == 0
    x = torch.randn(1, 2, 3200) * 0.1
    y, _, (dev, gate_logit) = model.forward_with_deviation(x)
    k, frames = model.bins, model.num_frames(3200)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert dev.shape == gate_logit.shape == (2, k, frames) and torch.all(dev == 0)
    assert torch.allclose(torch.sigmoid(gate_logit), torch.full_like(gate_logit, 0.1192), atol=1e-4)
    MultiResolutionSTFTLoss()(y, x)["loss"].backward()
    grad = model.tonal.weight.grad[:, :, 0]  # (2*C*K, hidden): deviation rows, then gate rows
    # the integrated phase takes the deviations without gradient: only their own supervision trains them
    assert grad[: 2 * k].abs().sum() == 0 and grad[2 * k:].abs().sum() > 0
    plain = AudioAutoencoder(AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1))
    assert plain.tonal is None and not any(k.startswith("tonal.") for k in plain.state_dict())


def test_instantaneous_deviation_reads_a_partial_between_bins() -> None:
    t = torch.arange(48000) / 48000
    spec = SameSTFT(1280, 320)(torch.sin(2 * math.pi * 277.2 * t)[None])
    dev, weight = instantaneous_deviation(spec, 1280, 320)
    assert dev.shape == weight.shape == (1, 641, spec.shape[-1] - 1)
    mid = slice(10, 140)
    for k in (6, 7, 8):  # every bin of the main lobe reports the partial's own frequency
        assert torch.allclose(dev[0, k, mid], torch.full_like(dev[0, k, mid], 277.2 / 37.5 - k), atol=1e-3)
    assert weight[0, 7, mid].min() > 100 * weight[0, 40, mid].max()  # far bins carry no weight
    assert steadiness(dev)[0, 7, mid].min() > 0.99
    noise = SameSTFT(1280, 320)(torch.randn(1, 48000))
    assert steadiness(instantaneous_deviation(noise, 1280, 320)[0]).mean() < 0.2
    # round trip: integrating the measured deviations re-synthesises the tone's advance
    phase = integrated_phase(torch.nn.functional.pad(dev, (1, 0)), 1280, 320)
    adv = torch.angle(torch.polar(torch.ones_like(phase[0, 7, 1:]), phase[0, 7, 1:] - phase[0, 7, :-1]))
    ref = torch.angle(spec[0, 7, 1:] * spec[0, 7, :-1].conj())
    assert (torch.polar(torch.ones_like(adv), adv) - torch.polar(torch.ones_like(ref), ref))[mid].abs().max() < 1e-3


def _bass_tone(hz: float, phase: float = 0.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * 48000)) / 48000.0
    x = 0.3 * torch.sin(2 * math.pi * hz * t + phase)
    return torch.stack([x, x])[None]  # (1, 2, N)


def test_low_band_reads_bass_pitch_without_phase_and_starts_at_zero() -> None:
    torch.manual_seed(0)
    plain_cfg = AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1)
    low_cfg = AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1, lowband_fft=8192)
    plain, low = AudioAutoencoder(plain_cfg).eval(), AudioAutoencoder(low_cfg).eval()
    result = low.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["enc_low.bias", "enc_low.weight"] and not result.unexpected_keys
    assert low.low_bins == int(400.0 * 8192 / 48000) + 1 == 69
    a1, a1_shifted, bb1 = _bass_tone(55.0), _bass_tone(55.0, phase=1.3), _bass_tone(58.27)  # A1, A1, Bb1
    with torch.no_grad():
        f = low.lowband_features(a1)
        assert f.shape == (1, 2 * 69, 150)
        mid = f[0, :69, 50:100]  # left channel, frames away from the edges
        assert int(mid.mean(dim=1).argmax()) == round(55.0 * 8192 / 48000)  # bin 9: 52.7-58.6 Hz
        assert int(low.lowband_features(bb1)[0, :69, 50:100].mean(dim=1).argmax()) == round(58.27 * 8192 / 48000)
        # a phase-free reading: the same note at another phase gives the same magnitudes around its peak
        near = slice(7, 12)
        torch.testing.assert_close(low.lowband_features(a1_shifted)[0, near, 50:100], f[0, near, 50:100],
                                   atol=0.02, rtol=0)
        torch.testing.assert_close(low.encode(a1), plain.encode(a1))  # zero-initialised: the same function
        low.enc_low.weight.normal_(0.0, 0.1)
        assert not torch.allclose(low.encode(a1), plain.encode(a1))
    with pytest.raises(ConfigMismatch, match="lowband_fft"):
        AudioAutoencoder(AutoencoderConfig(lowband_fft=1001))


def test_autoencoder_fields_added_later_stay_out_of_the_json_until_used() -> None:
    import dataclasses

    from engine.config import ModelConfig

    cfg = tiny()
    assert "lowband_fft" not in cfg.to_dict()["autoencoder"]  # older checkpoints re-save to the same bytes
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    low = dataclasses.replace(cfg, autoencoder=dataclasses.replace(cfg.autoencoder, lowband_fft=8192))
    assert low.to_dict()["autoencoder"]["lowband_fft"] == 8192
    assert ModelConfig.from_json(low.to_json()) == low
