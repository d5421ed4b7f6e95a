"""Reconstruction losses and metrics for audio autoencoders.

All functions take audio as (B, C, N) tensors (any C; channels are treated as separate signals).

Losses (differentiable):
- :class:`MultiResolutionSTFTLoss`: per resolution, L1 between natural-log power spectra (``log(P + floor)``,
  floor 1e-10) plus spectral convergence ``|| |Y| - |X| ||_F / || |X| ||_F`` plus (``lsd_weight``) a smooth
  log-spectral distance in dB / 10 (``sqrt(mean_f (10 log10 (P + floor) ratio)^2)`` per frame); averaged over
  resolutions.
  Computed on the STFT of the final waveform, so an inconsistent phase that changes the re-analysed
  magnitude is penalised.
- :func:`compressed_complex_loss`: mean squared distance between power-law compressed complex spectra
  ``|X|^0.3 e^{i phi}`` (phase-aware; the compression lifts quiet partials so their phase counts as well as the
  bass's, which dominates a waveform L1).
- :func:`waveform_l1`.

Metrics (also differentiable, used for evaluation):
- :func:`log_spectral_distance` (dB): STFT n_fft 2048, hop 512, periodic Hann window w, centred frames with zero
  padding; power P = |X|^2 / sum(w^2) floored at 1e-10 (-100 dB); per channel and frame
  ``sqrt(mean_f (10 log10 P_ref - 10 log10 P_est)^2)``, then the mean over frames, channels and items.
- :func:`si_sdr` (dB): scale-invariant SDR per item and channel over the whole signal, averaged.
"""

from __future__ import annotations

import torch

from torch import Tensor, nn

from protocol.errors import InvalidAudio

DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (2048, 512))
POWER_FLOOR = 1e-10  # -100 dB


def _check_pair(est: Tensor, ref: Tensor) -> None:
    if est.shape != ref.shape:
        raise InvalidAudio(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    if est.dim() != 3:
        raise InvalidAudio(f"expected audio (B, C, N), got {tuple(est.shape)}")


def stft_power(x: Tensor, n_fft: int, hop: int, window: Tensor | None = None) -> Tensor:
    """x (B, C, N) -> power spectrum (B*C, n_fft // 2 + 1, frames), centred frames, zero padding, Hann window,
    normalised by the window energy sum(w^2) (the convention of ``engine/eval/metrics.py``)."""
    b, c, n = x.shape
    if window is None:
        window = torch.hann_window(n_fft, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x.reshape(b * c, n), n_fft, hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return (spec.real.square() + spec.imag.square()) / window.square().sum()


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over resolutions of (log-power L1 + spectral convergence), divided by the number of resolutions.

    ``forward(est, ref)`` returns a dict: ``loss`` (the scalar to optimise), ``log_mag`` and ``sc`` (components).
    """

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS,
                 power_floor: float = POWER_FLOOR, sc_weight: float = 1.0, log_weight: float = 1.0,
                 lsd_weight: float = 0.0) -> None:
        super().__init__()
        self.resolutions = tuple(resolutions)
        self.power_floor = power_floor
        self.sc_weight = sc_weight
        self.log_weight = log_weight
        self.lsd_weight = lsd_weight
        for n_fft, _ in self.resolutions:
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, est: Tensor, ref: Tensor) -> dict[str, Tensor]:
        _check_pair(est, ref)
        log_total = est.new_zeros(())
        sc_total = est.new_zeros(())
        lsd_total = est.new_zeros(())
        for n_fft, hop in self.resolutions:
            win = getattr(self, f"win{n_fft}")
            pe = stft_power(est, n_fft, hop, win)
            pr = stft_power(ref, n_fft, hop, win)
            diff = torch.log(pe + self.power_floor) - torch.log(pr + self.power_floor)  # (B*C, K, T) nats
            log_total = log_total + diff.abs().mean()
            if self.lsd_weight:
                db = diff * (10.0 / 2.302585092994046)
                lsd_total = lsd_total + (db.square().mean(dim=1) + 1e-6).sqrt().mean()
            me, mr = (pe + 1e-12).sqrt(), (pr + 1e-12).sqrt()
            num = (me - mr).square().sum(dim=(1, 2))
            den = mr.square().sum(dim=(1, 2))
            sc_total = sc_total + ((num + 1e-8) / (den + 1e-8)).sqrt().mean()
        n = len(self.resolutions)
        log_mag, sc, lsd = log_total / n, sc_total / n, lsd_total / n
        loss = self.log_weight * log_mag + self.sc_weight * sc + self.lsd_weight * lsd / 10.0
        return {"loss": loss, "log_mag": log_mag, "sc": sc, "lsd_db": lsd}


def compressed_complex_loss(est: Tensor, ref: Tensor, n_fft: int = 1280, hop: int = 320, power: float = 0.3,
                            window: Tensor | None = None) -> Tensor:
    """Mean over bins, frames, channels and items of ``|c(Y) - c(X)|^2``, ``c(X) = |X|^power e^{i angle X}``.

    STFT as :func:`stft_power` (centred, zero padding, periodic Hann), spectra divided by ``sqrt(sum(w^2))``.
    """
    _check_pair(est, ref)
    b, c, n = est.shape
    if window is None:
        window = torch.hann_window(n_fft, periodic=True, device=est.device, dtype=est.dtype)
    scale = window.square().sum().sqrt()

    def comp(x: Tensor) -> Tensor:
        spec = torch.stft(x.reshape(b * c, n), n_fft, hop, window=window, center=True, pad_mode="constant",
                          return_complex=True) / scale
        mag = spec.abs().clamp_min(1e-8)
        return spec * mag.pow(power - 1.0)

    return (comp(est) - comp(ref)).abs().square().mean()


def waveform_l1(est: Tensor, ref: Tensor) -> Tensor:
    _check_pair(est, ref)
    return (est - ref).abs().mean()


def log_spectral_distance(est: Tensor, ref: Tensor, n_fft: int = 2048, hop: int = 512,
                          floor_db: float = -100.0) -> Tensor:
    """Log-spectral distance in dB (see the module docstring for the exact definition). Returns a scalar."""
    _check_pair(est, ref)
    floor = 10.0 ** (floor_db / 10.0)
    de = 10.0 * torch.log10(stft_power(est, n_fft, hop).clamp_min(floor))
    dr = 10.0 * torch.log10(stft_power(ref, n_fft, hop).clamp_min(floor))
    per_frame = (de - dr).square().mean(dim=1).sqrt()  # (B*C, frames)
    return per_frame.mean()


def si_sdr(est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB, per item and channel (signals made zero-mean first), averaged. Scalar."""
    _check_pair(est, ref)
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    ratio = (target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps)
    return (10.0 * torch.log10(ratio)).mean()


def multi_resolution_stft_distance(est: Tensor, ref: Tensor) -> Tensor:
    """The evaluation form of :class:`MultiResolutionSTFTLoss` (default resolutions, log-power L1 + SC)."""
    return MultiResolutionSTFTLoss().to(est.device)(est, ref)["loss"]


__all__ = ["MultiResolutionSTFTLoss", "waveform_l1", "log_spectral_distance", "si_sdr",
           "multi_resolution_stft_distance", "stft_power", "DEFAULT_RESOLUTIONS", "POWER_FLOOR"]

