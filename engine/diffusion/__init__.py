"""Diffusion: the noise schedule, classifier-free guidance, samplers and the in-context channels."""

from engine.diffusion.schedule import NoiseSchedule

__all__ = ["NoiseSchedule"]
