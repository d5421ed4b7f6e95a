"""NoiseSchedule: tables, continuous-time interpolation, forward process, sampling grid."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import get_config
from engine.diffusion.schedule import COSINE_MIN_ALPHA_BAR, NoiseSchedule
from protocol.errors import ConfigMismatch, InvalidArgument


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_tables_shapes_and_monotone(kind: str) -> None:
    s = NoiseSchedule(1000, kind)
    assert s.alphas_cumprod.shape == (1001,)
    assert s.betas.shape == (1000,)
    assert s.alphas_cumprod[0].item() == 1.0
    diffs = s.alphas_cumprod[1:] - s.alphas_cumprod[:-1]
    assert bool((diffs <= 0).all())
    assert bool(((s.betas >= 0) & (s.betas < 1)).all())
    # the free level carries (almost) no signal: log-SNR at T is about -10 or lower
    assert s.log_snr_half(1000).item() * 2 < -9.5


def test_linear_betas_are_ddpm() -> None:
    s = NoiseSchedule(1000, "linear")
    assert s.betas[0].item() == pytest.approx(1e-4, rel=1e-9)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=1e-9)


def test_cosine_floor_and_shape() -> None:
    s = NoiseSchedule(1000, "cosine")
    assert s.alphas_cumprod[-1].item() == pytest.approx(COSINE_MIN_ALPHA_BAR)
    t = 500
    f = lambda u: math.cos((u / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert s.alphas_cumprod[t].item() == pytest.approx(f(t) / f(0), rel=1e-12)


def test_continuous_interpolation() -> None:
    s = NoiseSchedule(100, "linear")
    for t in (0, 1, 37, 100):
        assert s.log_alpha_bar(t).item() == pytest.approx(math.log(s.alphas_cumprod[t].item()), abs=1e-12)
    mid = s.log_alpha_bar(37.5).item()
    lo, hi = math.log(s.alphas_cumprod[37].item()), math.log(s.alphas_cumprod[38].item())
    assert mid == pytest.approx(0.5 * (lo + hi), abs=1e-12)
    a, sg = s.alpha(37.5).item(), s.sigma(37.5).item()
    assert a * a + sg * sg == pytest.approx(1.0, abs=1e-12)
    assert s.log_snr_half(37.5).item() == pytest.approx(math.log(a / sg), abs=1e-9)
    assert math.isinf(s.log_snr_half(0.0).item())


def test_add_noise_per_stem_times() -> None:
    s = NoiseSchedule(1000, "cosine")
    x0 = torch.randn(2, 4, 3, 5)  # (B, k, D, F)
    eps = torch.randn(2, 4, 3, 5)
    t = torch.tensor([[0, 1000, 250, 0], [10, 0, 0, 999]])  # (B, k)
    xt = s.add_noise(x0, eps, t)
    assert xt.shape == (2, 4, 3, 5)
    assert torch.equal(xt[0, 0], x0[0, 0])  # t = 0: given clean, bit-exact
    assert torch.equal(xt[1, 1], x0[1, 1])
    a, sg = s.alpha(250).item(), s.sigma(250).item()
    torch.testing.assert_close(xt[0, 2], a * x0[0, 2] + sg * eps[0, 2])
    with pytest.raises(ConfigMismatch):
        s.add_noise(x0, eps, torch.zeros(3))


def test_sampling_grid_and_errors() -> None:
    s = NoiseSchedule.from_config(get_config("tiny"))
    grid = s.sampling_timesteps(4)
    assert len(grid) == 5 and grid[0] == 1000.0 and grid[-2] == 1.0 and grid[-1] == 0.0
    lam = [s.log_snr_half(t).item() for t in grid[:-1]]
    steps = [b - a for a, b in zip(lam, lam[1:])]
    assert all(h == pytest.approx(steps[0], rel=1e-6) for h in steps)  # uniform in half log-SNR
    assert s.sampling_timesteps(1) == [1000.0, 0.0]
    assert s.time_from_log_snr_half(s.log_snr_half(321.25)).item() == pytest.approx(321.25, abs=1e-6)
    with pytest.raises(InvalidArgument):
        s.sampling_timesteps(0)
    with pytest.raises(ConfigMismatch):
        NoiseSchedule(1000, "sigmoid")


def test_v_prediction_target_and_eps_round_trip_per_stem_times():
    from engine.diffusion.schedule import NoiseSchedule

    torch.manual_seed(0)
    s = NoiseSchedule(1000, "cosine", prediction="v")
    x0, eps = torch.randn(3, 4, 5, 7), torch.randn(3, 4, 5, 7)  # (B, k, D, F)
    t = torch.tensor([[0, 10, 500, 1000], [999, 1, 250, 0], [700, 700, 700, 700]])
    x_t = s.add_noise(x0, eps, t)
    v = s.target(x0, eps, t)
    a, sig = s.alpha(t).float()[..., None, None], s.sigma(t).float()[..., None, None]
    torch.testing.assert_close(v, a * eps - sig * x0)
    # a perfect v output gives back exactly the noise drawn, also in the flattened (B, k*D, F) layout
    flat = lambda z: z.reshape(3, 20, 7)  # noqa: E731
    torch.testing.assert_close(s.eps_from_output(flat(v), flat(x_t), t), flat(eps), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(v[:, 1:3], eps[:, 1:3])  # v differs from eps wherever sigma > 0
    torch.testing.assert_close(v[0, 0], eps[0, 0])  # t = 0: alpha 1, sigma 0
    e = NoiseSchedule(1000, "cosine")
    assert e.target(x0, eps, t) is eps and e.eps_from_output(flat(v), flat(x_t), t) is not None
    torch.testing.assert_close(e.eps_from_output(flat(v), flat(x_t), t), flat(v))
    with pytest.raises(ConfigMismatch):
        NoiseSchedule(1000, "cosine", prediction="x0")
    with pytest.raises(ConfigMismatch):
        s.eps_from_output(torch.zeros(3, 21, 7), torch.zeros(3, 21, 7), t)  # 21 channels do not split into 4 stems
