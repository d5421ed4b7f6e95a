"""Samplers on an analytic Gaussian data distribution, where the optimal epsilon is known in closed form.

Data ``x0 ~ N(mu, s0^2)`` per coordinate; then ``x_t ~ N(a mu, a^2 s0^2 + s^2)`` and
``E[eps | x_t] = s (x_t - a mu) / (a^2 s0^2 + s^2)``. The probability-flow ODE maps ``x_T`` to
``mu + s0 (x_T - a_T mu) / sqrt(a_T^2 s0^2 + s_T^2)`` exactly.
"""

from __future__ import annotations

import pytest
import torch

from engine.diffusion.guidance import branch_layout, guided_eps
from engine.diffusion.samplers import SAMPLERS, get_sampler
from engine.diffusion.schedule import NoiseSchedule
from protocol.errors import InvalidArgument, JobCancelled

MU, S0 = 1.5, 0.4


def gaussian_eps(schedule: NoiseSchedule, calls: list[float] | None = None):
    def model_fn(x: torch.Tensor, t: float) -> torch.Tensor:
        if calls is not None:
            calls.append(t)
        a, s = schedule.alpha(t).item(), schedule.sigma(t).item()
        return s * (x - a * MU) / (a * a * S0 * S0 + s * s)

    return model_fn


def exact_ode_map(schedule: NoiseSchedule, x_T: torch.Tensor) -> torch.Tensor:
    a, s = schedule.alpha(schedule.T).item(), schedule.sigma(schedule.T).item()
    return MU + S0 * (x_T - a * MU) / (a * a * S0 * S0 + s * s) ** 0.5


def start(n: int = 20_000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, n, generator=g, dtype=torch.float64)  # (B, C, F)


@pytest.mark.parametrize("name,steps", [("ddim", 100), ("dpmpp-2m", 20), ("ddpm", 200)])
@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_converges_to_data_distribution(name: str, steps: int, kind: str) -> None:
    schedule = NoiseSchedule(1000, kind)
    x = get_sampler(name)(gaussian_eps(schedule), start(), schedule, steps,
                          generator=torch.Generator().manual_seed(1))
    assert x.shape == (1, 4, 20_000)
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S0, rel=0.04)


def test_second_order_beats_ddim_on_the_exact_ode() -> None:
    schedule = NoiseSchedule(1000, "cosine")
    x_T = start(2000)
    exact = exact_ode_map(schedule, x_T)
    err = {}
    for name in ("ddim", "dpmpp-2m"):
        for steps in (5, 10, 40):
            x = SAMPLERS[name](gaussian_eps(schedule), x_T, schedule, steps, generator=None)
            err[name, steps] = (x - exact).abs().max().item()
    assert err["dpmpp-2m", 10] < err["ddim", 10]
    assert err["dpmpp-2m", 40] < err["dpmpp-2m", 10] < err["dpmpp-2m", 5]
    assert err["ddim", 40] < err["ddim", 10] < err["ddim", 5]
    assert err["dpmpp-2m", 40] < 1e-2


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_exact_number_of_model_calls_and_callback(name: str) -> None:
    schedule = NoiseSchedule(1000, "cosine")
    calls: list[float] = []
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    SAMPLERS[name](gaussian_eps(schedule, calls), start(10), schedule, 7, generator=torch.Generator().manual_seed(0),
                   callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert len(calls) == 7
    assert calls[0] == 1000.0 and all(0 < t <= 1000 for t in calls)
    assert seen == [(i, 7, (1, 4, 10)) for i in range(1, 8)]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_cancel_within_one_step(name: str) -> None:
    schedule = NoiseSchedule(1000, "cosine")
    calls: list[float] = []

    def cancel_at_3(step: int, total: int, x0: torch.Tensor) -> None:
        if step == 3:
            raise JobCancelled("cancelled by test")

    with pytest.raises(JobCancelled):
        SAMPLERS[name](gaussian_eps(schedule, calls), start(10), schedule, 50,
                       generator=torch.Generator().manual_seed(0), callback=cancel_at_3)
    assert len(calls) == 3


def test_seeded_stochastic_sampler_is_reproducible() -> None:
    schedule = NoiseSchedule(1000, "cosine")
    run = lambda seed: SAMPLERS["ddpm"](gaussian_eps(schedule), start(50), schedule, 10,  # noqa: E731
                                        generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    with pytest.raises(InvalidArgument):
        SAMPLERS["ddpm"](gaussian_eps(schedule), start(5), schedule, 3, generator=None)


def test_unknown_sampler_lists_known() -> None:
    with pytest.raises(InvalidArgument, match="dpmpp-2m"):
        get_sampler("euler-ancestral")


def test_guidance_is_one_batched_forward() -> None:
    batches: list[int] = []

    def forward(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batches.append(x.shape[0])
        half = x.shape[0] // 2
        # conditional half predicts 3, unconditional half predicts 1
        return torch.cat([torch.full_like(x[:half], 3.0), torch.full_like(x[half:], 1.0)])

    x = torch.zeros(2, 5, 8)
    eps = guided_eps(forward, x, torch.zeros(2, 4), 2.5)
    assert batches == [4]
    assert eps.shape == (2, 5, 8)
    torch.testing.assert_close(eps, torch.full_like(x, 1.0 + 2.5 * (3.0 - 1.0)))
    batches.clear()
    guided_eps(lambda x, t: (batches.append(x.shape[0]), x)[1], x, torch.zeros(2, 4), 1.0)
    assert batches == [2]


def test_chord_guidance_weighs_the_chords_apart_from_the_text() -> None:
    """Branches full / text-only / unconditional in one forward: uncond + w (text - uncond) + w_c (full - text)."""
    batches: list[int] = []

    def forward(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batches.append(x.shape[0])
        n = 2  # B = 2 inputs per branch
        values = [5.0, 3.0, 1.0][: x.shape[0] // n]  # full, text-only, unconditional
        return torch.cat([torch.full_like(x[i * n:(i + 1) * n], v) for i, v in enumerate(values)])

    x = torch.zeros(2, 5, 8)
    t = torch.zeros(2, 4)
    eps = guided_eps(forward, x, t, 2.5, chord_scale=4.0)
    assert batches == [6] and eps.shape == (2, 5, 8)
    torch.testing.assert_close(eps, torch.full_like(x, 1.0 + 2.5 * (3.0 - 1.0) + 4.0 * (5.0 - 3.0)))
    batches.clear()  # text unguided (w = 1): two branches, text + w_c (full - text)
    torch.testing.assert_close(guided_eps(forward, x, t, 1.0, chord_scale=4.0), torch.full_like(x, 3.0 + 4.0 * 2.0))
    assert batches == [4]
    assert branch_layout(2.5, 4.0) == ([0, 0, 1], [True, False, False])  # rows of (prompt, uncond); chords
    assert branch_layout(1.0, 4.0) == ([0, 0], [True, False])
    assert branch_layout(2.5, 2.5) == branch_layout(2.5, None) == ([0, 1], [True, False])
    assert branch_layout(1.0, None) == ([0], [True])
    batches.clear()  # w_c = w is plain guidance of the full condition: two branches
    torch.testing.assert_close(guided_eps(forward, x, t, 2.5, chord_scale=2.5), torch.full_like(x, 3.0 + 2.5 * 2.0))
    assert batches == [4]
