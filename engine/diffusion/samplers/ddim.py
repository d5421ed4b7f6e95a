"""DDIM (Song et al. 2021) on the VP schedule, epsilon prediction.

Per step from ``t`` to ``t'`` (``a = alpha``, ``s = sigma``):
``x0 = (x - s eps) / a``; ``c = eta (s'/s) sqrt(1 - a^2/a'^2)``; ``x' = a' x0 + sqrt(s'^2 - c^2) eps + c z``.
``eta = 0`` is the deterministic ODE sampler; ``eta = 1`` the ancestral (DDPM-like) one, drawing ``z``
from ``generator``. The last step lands on ``t = 0`` and returns the clean prediction.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from engine.diffusion.schedule import NoiseSchedule
from protocol.errors import InvalidArgument


def gaussian_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device then moved to ``x``'s.

    Drawing on the generator's device keeps a seed's noise identical across CPU and GPU runs.
    """
    if generator is None:
        raise InvalidArgument("a stochastic sampler needs an explicit torch.Generator (seed)")
    z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return z.to(device=x.device, dtype=x.dtype)


@torch.no_grad()
def ddim(model_fn: Callable[[Tensor, float], Tensor], x_T: Tensor, schedule: NoiseSchedule, steps: int, *,
         generator: torch.Generator | None, callback: Callable[[int, int, Tensor], None] | None = None,
         eta: float = 0.0) -> Tensor:
    """DDIM from ``t = T`` to ``t = 0`` in ``steps`` model evaluations. ``x_T``: (B, C, F)."""
    times = schedule.sampling_timesteps(steps)
    x = x_T
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
        a_next, s_next = float(schedule.alpha(t_next)), float(schedule.sigma(t_next))
        eps = model_fn(x, t)  # (B, C, F)
        x0 = (x - s * eps) / a
        if callback is not None:
            callback(i + 1, steps, x0)
        if t_next <= 0.0:
            x = x0
            break
        c = eta * (s_next / s) * math.sqrt(max(0.0, 1.0 - (a * a) / (a_next * a_next))) if eta > 0 else 0.0
        x = a_next * x0 + math.sqrt(max(0.0, s_next * s_next - c * c)) * eps
        if c > 0.0:
            x = x + c * gaussian_like(x, generator)
    return x
