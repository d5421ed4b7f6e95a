"""The discrete-time variance-preserving noise schedule (DDPM), epsilon or v prediction.

``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` for integer ``t`` in ``0..T``; ``abar_0 = 1`` (clean, a
stem *given* in JEN-1 Composer's timestep vector) and ``t = T`` is the *free* level (no signal left to
speak of). ``alphas_cumprod`` therefore has ``T + 1`` entries, indexed by ``t`` itself.

Samplers need non-integer times: ``log abar`` is interpolated piecewise-linearly between integer
steps (as DPM-Solver's discrete ``NoiseScheduleVP`` does), so ``alpha(t)``, ``sigma(t)`` and the half
log-SNR ``lambda(t) = log alpha - log sigma`` are defined for every real ``t`` in ``[0, T]``.

Schedules (``DiffusionConfig.beta_schedule``):
- ``linear``: betas from 1e-4 to 0.02 scaled to ``T`` (Ho et al. 2020); terminal log-SNR about -10.
- ``cosine``: ``abar(t) = cos^2(((t/T + s) / (1 + s)) pi/2)``, ``s = 0.008`` (Nichol & Dhariwal 2021), with
  ``abar`` floored at sigmoid(-10) ~ 4.5e-5, the linear schedule's terminal level. Without the floor
  ``abar_T`` ~ 2e-9 and an epsilon-predicting model's error at ``t = T`` is amplified by
  ``1/alpha_T`` ~ 2e4 in the first sampler step; with it by ~150, as for the linear schedule.

Prediction targets (``DiffusionConfig.prediction``): ``epsilon`` (the network predicts the noise) or ``v``
(Salimans & Ho 2022: ``v = alpha eps - sigma x0``). Samplers always receive epsilon: :meth:`eps_from_output`
turns a v output into ``eps = sigma x_t + alpha v``, i.e. the network adds a correction to the optimal guess for
unit-variance data, ``sigma x_t``. The v loss is the epsilon loss weighted by ``1/alpha^2``, so high-noise levels,
where the data prediction (stem identity, arrangement) is decided, carry weight; an epsilon network must instead
copy every noise channel through its narrowest layer and its data prediction degrades by ``sigma/alpha`` there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from protocol.errors import ConfigMismatch, InvalidArgument

#: abar floor of the cosine schedule: sigmoid(-10), i.e. terminal log-SNR -10.
COSINE_MIN_ALPHA_BAR = 1.0 / (1.0 + math.exp(10.0))
COSINE_S = 0.008


def _alpha_bar_linear(T: int) -> Tensor:
    scale = 1000.0 / T
    betas = torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64)  # (T,)
    return torch.cumprod(1.0 - betas, dim=0)


def _alpha_bar_cosine(T: int) -> Tensor:
    t = torch.arange(0, T + 1, dtype=torch.float64) / T  # (T+1,)
    f = torch.cos((t + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    abar = (f / f[0])[1:]  # (T,) for t = 1..T
    return abar.clamp(min=COSINE_MIN_ALPHA_BAR)


SCHEDULES = {"linear": _alpha_bar_linear, "cosine": _alpha_bar_cosine}
PREDICTIONS = ("epsilon", "v")


class NoiseSchedule:
    """VP schedule with ``T`` training steps. All tables are float64 on the CPU."""

    def __init__(self, T: int = 1000, kind: str = "cosine", prediction: str = "epsilon") -> None:
        if kind not in SCHEDULES:
            raise ConfigMismatch(f"unknown beta schedule {kind!r}; known: {sorted(SCHEDULES)}")
        if prediction not in PREDICTIONS:
            raise ConfigMismatch(f"unknown prediction {prediction!r}; known: {list(PREDICTIONS)}")
        self.prediction = prediction
        if int(T) < 2:
            raise ConfigMismatch(f"num_train_timesteps must be >= 2, got {T}")
        self.T = int(T)
        self.kind = kind
        abar = SCHEDULES[kind](self.T)  # (T,) for t = 1..T
        self.alphas_cumprod = torch.cat([torch.ones(1, dtype=torch.float64), abar])  # (T+1,), index t
        self.betas = 1.0 - self.alphas_cumprod[1:] / self.alphas_cumprod[:-1]  # (T,), beta_t for t = 1..T
        self._log_abar = self.alphas_cumprod.log()  # (T+1,)

    @classmethod
    def from_config(cls, cfg) -> "NoiseSchedule":
        """From a ``ModelConfig`` or a ``DiffusionConfig``."""
        d = getattr(cfg, "diffusion", cfg)
        return cls(d.num_train_timesteps, d.beta_schedule, getattr(d, "prediction", "epsilon"))

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.T}, kind={self.kind!r}, prediction={self.prediction!r})"

    # ---- continuous-time coefficients ---------------------------------------------------------
    def log_alpha_bar(self, t: Tensor | float) -> Tensor:
        """Piecewise-linear interpolation of ``log abar`` at real ``t`` (clamped to [0, T]); float64."""
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0.0, float(self.T))
        lo = t.floor().clamp(max=self.T - 1).long()
        frac = t - lo.to(torch.float64)
        table = self._log_abar
        return table[lo] + frac * (table[lo + 1] - table[lo])

    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale ``sqrt(abar_t)``."""
        return (0.5 * self.log_alpha_bar(t)).exp()

    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale ``sqrt(1 - abar_t)`` (0 at t = 0)."""
        return (-torch.expm1(self.log_alpha_bar(t))).clamp(min=0.0).sqrt()

    def log_snr_half(self, t: Tensor | float) -> Tensor:
        """``lambda_t = log(alpha_t / sigma_t)`` (DPM-Solver's half log-SNR); +inf at t = 0."""
        la = self.log_alpha_bar(t)
        return 0.5 * la - 0.5 * torch.log(-torch.expm1(la))

    # ---- forward process -----------------------------------------------------------------------
    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
        """``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.

        ``t``: a number, or a tensor whose shape is a prefix of ``x0.shape`` (e.g. ``(B,)`` for ``x0``
        ``(B, C, F)``, or ``(B, k)`` per-stem times for ``x0`` ``(B, k, D, F)``); integer or real.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim > x0.ndim or tuple(x0.shape[: t.ndim]) != tuple(t.shape):
            raise ConfigMismatch(f"timesteps of shape {tuple(t.shape)} do not lead x0 shape {tuple(x0.shape)}")
        shape = tuple(t.shape) + (1,) * (x0.ndim - t.ndim)
        a = self.alpha(t).reshape(shape).to(device=x0.device, dtype=x0.dtype)
        s = self.sigma(t).reshape(shape).to(device=x0.device, dtype=x0.dtype)
        return a * x0 + s * eps

    def _coefficients(self, t: Tensor | float, like: Tensor) -> tuple[Tensor, Tensor]:
        """alpha(t), sigma(t) shaped to broadcast against ``like`` ((B, k, D, F) with t (B, k), or (B, k*D, F)
        with t (B, k): each stem's D channels get that stem's time; or any prefix shape as in :meth:`add_noise`)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 2 and like.ndim == 3 and like.shape[0] == t.shape[0] and like.shape[1] != t.shape[1]:
            if like.shape[1] % t.shape[1]:
                raise ConfigMismatch(f"{like.shape[1]} channels do not split into {t.shape[1]} stems")
            t = t.repeat_interleave(like.shape[1] // t.shape[1], dim=1)  # (B, k*D)
        if t.ndim > like.ndim or tuple(like.shape[: t.ndim]) != tuple(t.shape):
            raise ConfigMismatch(f"timesteps of shape {tuple(t.shape)} do not lead shape {tuple(like.shape)}")
        shape = tuple(t.shape) + (1,) * (like.ndim - t.ndim)
        a = self.alpha(t).reshape(shape).to(device=like.device, dtype=like.dtype)
        s = self.sigma(t).reshape(shape).to(device=like.device, dtype=like.dtype)
        return a, s

    def target(self, x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
        """The training target of the network for clean ``x0``, noise ``eps`` at ``t``: eps, or ``alpha eps - sigma x0``."""
        if self.prediction == "epsilon":
            return eps
        a, s = self._coefficients(t, x0)
        return a * eps - s * x0

    def eps_from_output(self, out: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
        """Epsilon from the network output ``out`` at noisy ``x_t`` (same shape) and time ``t`` (see module doc)."""
        if self.prediction == "epsilon":
            return out
        a, s = self._coefficients(t, out)
        return s * x_t.to(out.dtype) + a * out

    def x0_from_output(self, out: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
        """The data prediction from the network output: ``alpha x_t - sigma v`` (exact at every t), or
        ``(x_t - sigma eps) / alpha`` (alpha floored at 1e-3 near t = T, where it is ill-conditioned)."""
        a, s = self._coefficients(t, out)
        if self.prediction == "epsilon":
            return (x_t.to(out.dtype) - s * out) / a.clamp_min(1e-3)
        return a * x_t.to(out.dtype) - s * out

    def time_from_log_snr_half(self, lam: Tensor | float) -> Tensor:
        """Inverse of :meth:`log_snr_half` on ``[0, T]`` (bisection; lambda is non-increasing in t). float64."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        lo = torch.zeros_like(lam)
        hi = torch.full_like(lam, float(self.T))
        for _ in range(60):  # T / 2^60: far below float64 resolution of t
            mid = 0.5 * (lo + hi)
            above = self.log_snr_half(mid) > lam  # still too clean: the answer lies later in time
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    # ---- sampling grid -------------------------------------------------------------------------
    def sampling_timesteps(self, steps: int) -> list[float]:
        """``steps + 1`` times from ``T`` (free) down to 0 (clean), uniform in half log-SNR.

        The model is evaluated at the first ``steps`` of them: ``T`` first, then times equally spaced in
        ``lambda`` down to ``t = 1`` (the cleanest level seen in training), as DPM-Solver's ``logSNR``
        spacing does; the last entry, 0, is where the sampler lands (it returns the data prediction).
        """
        if int(steps) < 1:
            raise InvalidArgument(f"steps must be >= 1, got {steps}")
        n = int(steps)
        if n == 1:
            return [float(self.T), 0.0]
        lam = torch.linspace(float(self.log_snr_half(self.T)), float(self.log_snr_half(1.0)), n,
                             dtype=torch.float64)  # (n,)
        times = self.time_from_log_snr_half(lam).tolist()
        times[0], times[-1] = float(self.T), 1.0
        return times + [0.0]
