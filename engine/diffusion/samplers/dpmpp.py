"""DPM-Solver++(2M): the multistep second-order solver of Lu et al. (2022), data-prediction form.

With ``lambda = log(alpha / sigma)``, ``h_i = lambda_i - lambda_{i-1}`` and the data prediction
``x0_i = (x_i - sigma_i eps_i) / alpha_i`` (Algorithm 2 of the paper):

- first step: ``x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) x0_{i-1}`` (= DDIM);
- then, with ``r = h_{i-1} / h_i``: ``D = (1 + 1/(2r)) x0_{i-1} - 1/(2r) x0_{i-2}`` replaces ``x0_{i-1}``;
- the last step lands on ``t = 0`` (``sigma = 0``, ``lambda = +inf``) and returns the data prediction
  (first order there, as in k-diffusion and DPM-Solver's ``lower_order_final``).

Deterministic: the generator is accepted for the common signature and not used.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from engine.diffusion.schedule import NoiseSchedule


@torch.no_grad()
def dpmpp_2m(model_fn: Callable[[Tensor, float], Tensor], x_T: Tensor, schedule: NoiseSchedule, steps: int, *,
             generator: torch.Generator | None = None,
             callback: Callable[[int, int, Tensor], None] | None = None) -> Tensor:
    """DPM-Solver++(2M) from ``t = T`` to ``t = 0`` in ``steps`` model evaluations. ``x_T``: (B, C, F)."""
    times = schedule.sampling_timesteps(steps)
    x = x_T
    x0_prev: Tensor | None = None
    h_prev = 0.0
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
        eps = model_fn(x, t)  # (B, C, F)
        x0 = (x - s * eps) / a
        if callback is not None:
            callback(i + 1, steps, x0)
        if t_next <= 0.0:
            x = x0
            break
        a_next, s_next = float(schedule.alpha(t_next)), float(schedule.sigma(t_next))
        h = float(schedule.log_snr_half(t_next)) - float(schedule.log_snr_half(t))
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
        x = (s_next / s) * x + (-a_next * math.expm1(-h)) * d
        x0_prev, h_prev = x0, h
    return x
