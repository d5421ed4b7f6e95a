"""AudioAutoencoder contract: exact shapes and lengths, stereo, latent masking, STFT pair, metrics."""

import math

import pytest
import torch

from engine.config import AutoencoderConfig, tiny
from engine.models.autoencoder import AudioAutoencoder, SameSTFT, mask_latent_frames
from engine.models.losses import MultiResolutionSTFTLoss, log_spectral_distance, si_sdr
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
