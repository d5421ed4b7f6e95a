"""Frame-rate audio autoencoder: 48 kHz stereo waveform <-> continuous latent at 150 Hz (hop 320).

Design (JEN-1 section 4.1 contract, Vocos-style body so it trains on a CPU):

    audio (B, 2, N)
      -> pad to F*320 (F = ceil(N / 320)) + (n_fft - hop)/2 zeros each side
      -> STFT n_fft, hop 320, Hann, "same" framing: exactly F frames, frame t centred on hop segment t
      -> features per channel: log-magnitude and power-law compressed complex (|X|^0.3 e^{i phi}) (B, 6*K, F)
      -> pointwise embed -> ConvNeXt-1D blocks at 150 Hz -> 1x1 projection -> tanh  = latent z (B, D, F)
    z (B, D, F)
      -> conv embed -> ConvNeXt-1D blocks -> linear head: log-magnitude and phase per channel and bin
      -> complex spectrum -> inverse STFT (overlap-add, window-envelope normalised, same framing)
      -> (B, 2, F*320) -> trimmed to the requested length.

Tonal path (``tonal_head``): a decoder with stationary input (a held note's latent is nearly constant from frame
to frame) is equivariant to shifts of one hop, so with frame-wise phases alone it can only place coherent energy at
multiples of ``sample_rate / hop`` (150 Hz); a 262 Hz note comes out at 300 Hz. The tonal path predicts, per bin and
frame, a frequency deviation from the bin centre (within +-2 bins) and integrates it over frames into a phase, so a
constant output is a steady partial at any frequency (GANSynth's instantaneous-frequency representation). A sigmoid
gate mixes the two phases per bin and frame, ``mag * ((1 - g) e^{i phase} + g e^{i integrated})``: frame-wise for
transients and noise, integrated for sustained partials. Training supervises both from the input (its
phase-vocoder frequencies and how steady they are: :func:`instantaneous_deviation`, :func:`steadiness`); the
integrated phase takes the deviations without gradient, since its sensitivity to them grows with every frame. It
starts at the first decoded frame, so a decode is exact only as a whole (the pipeline decodes whole spans).

Low band (``lowband_fft``): with 37.5 Hz bins the main features tell bass notes a semitone apart only by how
their phase turns from frame to frame, and an encoder that passes that on writes the bass pitch into the latent
as an oscillation near the latent's own Nyquist rate (75 Hz), whose phase a diffusion model cannot predict at
high noise: generated bass lines lose their notes (``docs/MODEL_CARD.md``). The low-band features are the
log-magnitudes of a long STFT (8192 points: 5.9 Hz bins) below ``lowband_hz``, a steady, phase-free reading of
the bass pitch, added through a zero-initialised 1x1 projection (an autoencoder fine-tuned with it starts as the
same function). Training can then ask for a smooth latent (``--latent-smooth``: the mean squared frame-to-frame
difference), which moves the pitch from phase motion to these features; the decoder's tonal path synthesises a
steady partial at any frequency from a steady latent.

The latent is bounded in (-1, 1) by tanh so whitening and diffusion see a well-scaled space.
Training-time latent masking (JEN-1: p = 5% of latent frames) zeroes whole frames before the decoder.
K = n_fft // 2 + 1 frequency bins.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import AutoencoderConfig
from protocol.errors import ConfigMismatch, InvalidAudio

MAX_LOG_MAG = 8.0  # exp(8) ~ 3e3: above any full-scale bin magnitude of a 1280-point Hann STFT (~320)
MIN_LOG_MAG = math.log(1e-5)  # -100 dB in power: the floor of the log-spectral distance
ENCODER_PREFIXES = ("enc_", "to_latent.")  # parameter names of the encoder (the latent space)
TONAL_GATE_INIT = -2.0  # sigmoid(-2) = 0.12: a new tonal path starts as a small share beside the frame-wise one
TONAL_MAX_DEVIATION = 2.0  # bins: a partial shows in the 4 bins of the Hann main lobe around it


class SameSTFT(nn.Module):
    """STFT / inverse STFT pair with "same" framing: F = L / hop frames for a signal of length L (multiple of hop).

    The signal is zero-padded by ``(n_fft - hop) / 2`` on both sides and framed without centring, so frame ``t``
    covers samples ``[t*hop - pad, t*hop - pad + n_fft)``. :meth:`inverse` is the exact inverse of :meth:`forward`
    (overlap-add divided by the summed squared window), so ``inverse(forward(x)) == x`` up to float error.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        if (n_fft - hop) % 2 or n_fft < hop:
            raise ConfigMismatch(f"n_fft {n_fft} - hop {hop} must be even and >= 0")
        self.n_fft = n_fft
        self.hop = hop
        self.pad = (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L) with L % hop == 0 -> complex (B, n_fft // 2 + 1, L // hop)."""
        x = F.pad(x, (self.pad, self.pad))
        return torch.stft(x, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)

    def inverse(self, spec: Tensor) -> Tensor:
        """spec: complex (B, n_fft // 2 + 1, F) -> (B, F * hop)."""
        n_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[None, :, None]  # (B, n_fft, F)
        total = (n_frames - 1) * self.hop + self.n_fft
        y = F.fold(frames, output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop))  # (B,1,1,T)
        wsq = (self.window**2)[None, :, None].expand(1, -1, n_frames)
        env = F.fold(wsq, output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop))  # (1,1,1,T)
        sl = slice(self.pad, self.pad + n_frames * self.hop)
        return y[:, 0, 0, sl] / env[:, 0, 0, sl].clamp_min(1e-8)


def integrated_phase(deviation: Tensor, n_fft: int, hop: int) -> Tensor:
    """Phase of steady partials: deviation (B, K, F) in bins from each bin's centre -> phase (B, K, F) in radians.

    Frame-referenced STFT phase of a partial at ``k + d`` bins advances by ``2 pi (k + d) hop / n_fft`` per frame;
    ``phase[:, k, t] = 2 pi hop / n_fft * (k t + sum_{s <= t} d[:, k, s])``, accumulated in float64 and wrapped to
    [0, 2 pi) so long spans keep their precision.
    """
    b, k, f = deviation.shape
    step = 2.0 * math.pi * hop / n_fft
    kt = torch.outer(torch.arange(k, device=deviation.device, dtype=torch.float64),
                     torch.arange(f, device=deviation.device, dtype=torch.float64))  # (K, F) exact integers
    total = kt[None] + torch.cumsum(deviation.double(), dim=-1)
    return torch.remainder(total * step, 2.0 * math.pi).to(deviation.dtype)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k) -> LayerNorm -> Linear(h, 3h) -> GELU -> Linear(3h, h) -> layer scale, residual.

    x: (B, h, F) -> (B, h, F)
    """

    def __init__(self, dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 3 * dim)
        self.pw2 = nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, F, h)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a (B, C, F) tensor."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def mask_latent_frames(z: Tensor, prob: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Zero ``prob`` of the latent frames of each item (JEN-1 noise-robust masking).

    z: (B, D, F). Per item, ``floor(prob * F + u)`` frames (u ~ U(0, 1), so the expected share is exactly ``prob``)
    are chosen at random without replacement. Returns (masked z, mask (B, F) bool, True = masked).
    """
    if not 0.0 <= prob < 1.0:
        raise ConfigMismatch(f"latent mask probability must be in [0, 1), got {prob}")
    b, _, n = z.shape
    if prob == 0.0:
        return z, torch.zeros(b, n, dtype=torch.bool, device=z.device)
    u = torch.rand(b, generator=generator)
    counts = torch.floor(prob * n + u).long().clamp(max=n)  # (B,)
    ranks = torch.rand(b, n, generator=generator).argsort(dim=1).argsort(dim=1)  # random permutation ranks
    mask = (ranks < counts[:, None]).to(z.device)  # (B, F)
    return z.masked_fill(mask[:, None, :], 0.0), mask


class AudioAutoencoder(nn.Module):
    """48 kHz stereo autoencoder with a ``latent_dim``-channel latent at ``sample_rate / hop`` frames per second."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        if cfg.n_fft < cfg.hop or (cfg.n_fft - cfg.hop) % 2:
            raise ConfigMismatch(f"autoencoder n_fft {cfg.n_fft} must be >= hop {cfg.hop} with even difference")
        self.cfg = cfg
        self.hop = cfg.hop
        self.latent_dim = cfg.latent_dim
        self.channels = cfg.audio_channels
        self.bins = cfg.n_fft // 2 + 1
        c, k, h = cfg.audio_channels, self.bins, cfg.hidden
        self.stft = SameSTFT(cfg.n_fft, cfg.hop)
        # encoder
        self.enc_in = nn.Conv1d(3 * c * k, h, 1)
        self.enc_norm = ChannelNorm(h)
        self.enc_blocks = nn.ModuleList(
            ConvNeXtBlock(h, cfg.kernel_size, 1.0 / max(1, cfg.encoder_depth)) for _ in range(cfg.encoder_depth))
        self.enc_out_norm = ChannelNorm(h)
        self.low_stft: SameSTFT | None = None
        self.enc_low: nn.Conv1d | None = None
        if cfg.lowband_fft:
            if cfg.lowband_fft < cfg.hop or (cfg.lowband_fft - cfg.hop) % 2:
                raise ConfigMismatch(f"lowband_fft {cfg.lowband_fft} must be >= hop {cfg.hop} with even difference")
            self.low_bins = int(cfg.lowband_hz * cfg.lowband_fft / cfg.sample_rate) + 1
            if not 1 <= self.low_bins <= cfg.lowband_fft // 2 + 1:
                raise ConfigMismatch(f"lowband_hz {cfg.lowband_hz} gives {self.low_bins} bins")
            self.low_stft = SameSTFT(cfg.lowband_fft, cfg.hop)
            self.enc_low = nn.Conv1d(c * self.low_bins, h, 1)
            with torch.no_grad():
                self.enc_low.weight.zero_()
                self.enc_low.bias.zero_()
        self.to_latent = nn.Conv1d(h, cfg.latent_dim, 1)
        # decoder
        self.dec_in = nn.Conv1d(cfg.latent_dim, h, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.dec_norm = ChannelNorm(h)
        self.dec_blocks = nn.ModuleList(
            ConvNeXtBlock(h, cfg.kernel_size, 1.0 / max(1, cfg.decoder_depth)) for _ in range(cfg.decoder_depth))
        self.dec_out_norm = ChannelNorm(h)
        self.head = nn.Conv1d(h, 2 * c * k, 1)  # per channel: K log-magnitudes, K phases
        with torch.no_grad():  # start quiet: log-magnitude bias well below the signal, phases random-ish
            self.head.bias[: c * k].fill_(-4.0)
        self.tonal: nn.Conv1d | None = None
        if cfg.tonal_head:  # per channel: K frequency deviations, K gate logits; starts as steady bin centres
            self.tonal = nn.Conv1d(h, 2 * c * k, 1)
            with torch.no_grad():
                self.tonal.weight.zero_()
                self.tonal.bias.zero_()
                self.tonal.bias[c * k:].fill_(TONAL_GATE_INIT)

    # ---- helpers ------------------------------------------------------------------------------------
    def num_frames(self, length: int) -> int:
        return max(1, math.ceil(length / self.hop))

    def _check_audio(self, audio: Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise InvalidAudio(f"autoencoder expects audio (B, {self.channels}, N), got {tuple(audio.shape)}")
        if audio.shape[-1] < 1:
            raise InvalidAudio("autoencoder got empty audio (0 samples)")

    def features(self, audio: Tensor) -> Tensor:
        """audio (B, C, N) -> STFT features (B, 3*C*K, F), F = ceil(N / hop)."""
        b, c, n = audio.shape
        spec = self.frame_spectrum(audio)  # (B*C, K, F) complex
        mag = spec.abs()
        logmag = torch.log(mag.clamp_min(1e-5))
        comp = spec * (mag.clamp_min(1e-5) ** -0.7)  # |X|^0.3 e^{i phi}
        feats = torch.cat([logmag * 0.25, comp.real, comp.imag], dim=1)  # (B*C, 3K, F)
        return feats.reshape(b, c * 3 * self.bins, spec.shape[-1])

    def lowband_features(self, audio: Tensor) -> Tensor:
        """audio (B, C, N) -> long-STFT log-magnitudes below ``lowband_hz`` (B, C*K_low, F), same framing."""
        spec = self.frame_spectrum(audio, self.low_stft)  # (B*C, K_long, F)
        logmag = torch.log(spec[:, : self.low_bins].abs().clamp_min(1e-5)) * 0.25
        return logmag.reshape(audio.shape[0], audio.shape[1] * self.low_bins, spec.shape[-1])

    @torch.no_grad()
    def init_output_bias(self, audio: Tensor) -> None:
        """Set the head's log-magnitude bias to the per-bin median log-magnitude of ``audio`` (B, C, N).

        A data-driven start: quiet bins (often at the -100 dB floor in stems) begin near their level instead
        of having to be learned, which the log-spectral distance weighs heavily.
        """
        self._check_audio(audio)
        logmag = torch.log(self.frame_spectrum(audio).abs().clamp_min(1e-5))  # (B*C, K, F)
        med = logmag.transpose(0, 1).reshape(self.bins, -1).median(dim=1).values  # (K,)
        self.head.bias[: self.channels * self.bins].copy_(med.repeat(self.channels).clamp(MIN_LOG_MAG, MAX_LOG_MAG))

    # ---- contract -----------------------------------------------------------------------------------
    def encode(self, audio: Tensor) -> Tensor:
        """audio (B, 2, N) -> latent (B, latent_dim, ceil(N / 320)), values in (-1, 1)."""
        self._check_audio(audio)
        h = self.enc_in(self.features(audio))  # (B, h, F)
        if self.enc_low is not None:
            h = h + self.enc_low(self.lowband_features(audio))
        h = self.enc_norm(h)
        for blk in self.enc_blocks:
            h = blk(h)
        return torch.tanh(self.to_latent(self.enc_out_norm(h)))  # (B, D, F)

    def decode(self, z: Tensor, length: int) -> Tensor:
        """latent (B, latent_dim, F) -> audio (B, 2, length); the F*320 samples are trimmed or zero-padded."""
        return self.decode_with_deviation(z, length)[0]

    def decode_with_deviation(self, z: Tensor, length: int) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """:meth:`decode` plus the tonal path's (frequency deviations in bins, gate logits), each (B*C, K, F),
        or None without one."""
        if z.dim() != 3 or z.shape[1] != self.latent_dim:
            raise ConfigMismatch(f"decoder expects latent (B, {self.latent_dim}, F), got {tuple(z.shape)}")
        if length < 1:
            raise InvalidAudio(f"decode length must be >= 1 sample, got {length}")
        b, _, frames = z.shape
        h = self.dec_norm(self.dec_in(z))
        for blk in self.dec_blocks:
            h = blk(h)
        h = self.dec_out_norm(h)
        out = self.head(h)  # (B, 2*C*K, F)
        ck = self.channels * self.bins
        logmag = out[:, :ck].clamp(MIN_LOG_MAG - 4.0, MAX_LOG_MAG)  # below the floor is allowed (silence)
        phase = out[:, ck:]
        spec = torch.polar(torch.exp(logmag), phase)  # (B, C*K, F) complex
        deviation = None
        if self.tonal is not None:
            tonal = self.tonal(h)
            dev = TONAL_MAX_DEVIATION * torch.tanh(tonal[:, :ck])
            gate_logit = tonal[:, ck:]
            gate = torch.sigmoid(gate_logit)
            steady = integrated_phase(dev.detach().reshape(b * self.channels, self.bins, frames), self.cfg.n_fft,
                                      self.hop).reshape(b, ck, frames)
            spec = (1.0 - gate) * spec + gate * torch.polar(torch.exp(logmag), steady)
            shape = (b * self.channels, self.bins, frames)
            deviation = (dev.reshape(shape), gate_logit.reshape(shape))
        wav = self.stft.inverse(spec.reshape(b * self.channels, self.bins, frames))  # (B*C, F*hop)
        wav = wav.reshape(b, self.channels, frames * self.hop)
        if wav.shape[-1] >= length:
            return wav[..., :length], deviation
        return F.pad(wav, (0, length - wav.shape[-1])), deviation

    def frame_spectrum(self, audio: Tensor, stft: SameSTFT | None = None) -> Tensor:
        """audio (B, C, N) -> complex STFT (B*C, K, F) in the decoder's own framing (frame t <-> latent frame t);
        ``stft``: another window length on the same hop (the low band), default the decoder's."""
        b, c, n = audio.shape
        frames = self.num_frames(n)
        return (stft or self.stft)(F.pad(audio, (0, frames * self.hop - n)).reshape(b * c, frames * self.hop))

    def forward(self, audio: Tensor, mask_prob: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """audio (B, 2, N) -> (reconstruction (B, 2, N), latent (B, D, F) before masking)."""
        recon, z, _ = self.forward_with_deviation(audio, mask_prob, generator)
        return recon, z

    def forward_with_deviation(self, audio: Tensor, mask_prob: float = 0.0, generator: torch.Generator | None = None
                               ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """:meth:`forward` plus the tonal path's deviations (see :meth:`decode_with_deviation`)."""
        z = self.encode(audio)
        zm, _ = mask_latent_frames(z, mask_prob, generator) if mask_prob > 0 else (z, None)
        recon, deviation = self.decode_with_deviation(zm, audio.shape[-1])
        return recon, z, deviation


def instantaneous_deviation(spec: Tensor, n_fft: int, hop: int, power: float = 0.3) -> tuple[Tensor, Tensor]:
    """Per-bin instantaneous frequency of a frame-referenced STFT, as deviation from the bin centre in bins.

    spec: complex (B, K, F) -> (deviation (B, K, F - 1) in (-n_fft / (2 hop), n_fft / (2 hop)], weight (B, K, F - 1)):
    the deviation of the advance from frame t to t + 1 (phase-vocoder estimate, the target of the tonal path's
    prediction at frame t + 1) and a weight ``(|X_t| |X_{t+1}|)^power`` (energetic bins count, silent ones not).
    """
    step = 2.0 * math.pi * hop / n_fft
    k = torch.arange(spec.shape[1], device=spec.device, dtype=torch.float64)[None, :, None]
    advance = torch.angle(spec[..., 1:] * spec[..., :-1].conj()).double() - step * k  # (B, K, F-1)
    wrapped = torch.remainder(advance + math.pi, 2.0 * math.pi) - math.pi
    weight = (spec[..., 1:].abs() * spec[..., :-1].abs()).pow(power)
    return (wrapped / step).to(spec.real.dtype), weight


def steadiness(deviation: Tensor, width: float = 0.1) -> Tensor:
    """How steady each bin's frequency is: deviation (B, K, T) -> (B, K, T) in [0, 1], ``exp(-(dd / width)^2)``
    with ``dd`` the change of the deviation (bins) from the previous advance (the first copies the second).

    About 1 on a held partial, near 0 on noise, whose phase-vocoder frequencies jump from frame to frame.
    """
    change = (deviation[..., 1:] - deviation[..., :-1]).abs()
    change = torch.cat([change[..., :1], change], dim=-1)
    return torch.exp(-(change / width).square())
