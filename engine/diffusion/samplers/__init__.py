"""Samplers: pure functions with one signature, picked by name from :data:`SAMPLERS`.

    sample(model_fn, x_T, schedule, steps, *, generator, callback=None) -> x_0

- ``model_fn(x, t) -> eps``: ``x`` (B, C, F) at real time ``t`` in ``(0, T]``; epsilon prediction, same shape.
- ``x_T``: (B, C, F) standard normal start at ``t = T``.
- ``schedule``: :class:`engine.diffusion.schedule.NoiseSchedule`; ``steps``: model evaluations.
- ``generator``: ``torch.Generator`` for stochastic samplers (deterministic ones ignore it).
- ``callback(step, total, x0_pred)`` after each model evaluation (``step`` counts from 1); it may raise
  ``protocol.errors.JobCancelled``, which propagates at once, so cancelling costs at most one step.
"""

from __future__ import annotations

import functools
from typing import Callable, Protocol

import torch
from torch import Tensor

from engine.diffusion.samplers.ddim import ddim
from engine.diffusion.samplers.dpmpp import dpmpp_2m
from engine.diffusion.schedule import NoiseSchedule
from protocol.errors import InvalidArgument

ModelFn = Callable[[Tensor, float], Tensor]
StepCallback = Callable[[int, int, Tensor], None]


class Sampler(Protocol):
    def __call__(self, model_fn: ModelFn, x_T: Tensor, schedule: NoiseSchedule, steps: int, *,
                 generator: torch.Generator | None, callback: StepCallback | None = None) -> Tensor: ...


SAMPLERS: dict[str, Sampler] = {
    "ddim": ddim,  # deterministic DDIM (eta = 0)
    "ddpm": functools.partial(ddim, eta=1.0),  # DDIM with eta = 1: ancestral DDPM-like sampling
    "dpmpp-2m": dpmpp_2m,  # DPM-Solver++(2M), multistep, data prediction
}


def get_sampler(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise InvalidArgument(f"unknown sampler {name!r}; known: {', '.join(sorted(SAMPLERS))}") from None


__all__ = ["SAMPLERS", "get_sampler", "ddim", "dpmpp_2m", "Sampler", "ModelFn", "StepCallback"]
