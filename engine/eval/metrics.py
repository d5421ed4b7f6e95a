"""Signal metrics for the evaluation suite (numpy only).

Audio is float32 ``(C, N)`` or ``(N,)`` at 48 kHz, as everywhere in Stemforge. Conventions:

- Power spectra use a periodic Hann window and are normalised by the window energy; levels are
  ``10 log10(power)`` floored at ``LSD_FLOOR_DB`` (-100 dB), so digital silence does not dominate.
- :func:`log_spectral_distance`: per frame, the RMS over frequency bins of the dB difference, averaged over frames
  and channels (n_fft 2048, hop 512). 0 dB for identical signals.
- :func:`mr_stft_distance`: mean over three resolutions (512/128, 1024/256, 2048/512) of spectral convergence
  ``|| |X| - |Y| ||_F / || |X| ||_F`` plus mean absolute log-magnitude difference (natural log, +1e-7). 0 for equal.
- :func:`si_sdr`: scale-invariant SDR in dB over all channels, zero-mean, clamped to
  ``[-SI_SDR_CEIL_DB, SI_SDR_CEIL_DB]`` (an exact copy gives the +100 dB ceiling instead of +inf).
- :func:`outside_error_db`: energy of the difference outside an edited region relative to the reference's energy
  there, in dB, floored at ``OUTSIDE_FLOOR_DB`` (-120 dB: an exact copy, instead of -inf).
- :func:`seam_measure`: at a sample position ``p``, with Hann windows of ``W`` = 2048 samples and spectra pooled into
  32 log-spaced bands (60 Hz - 20 kHz, so single-bin noise fluctuations average out): the log-spectral distance
  between the windows just left (centred ``p - W/2``) and just right (centred ``p + W/2``) of ``p`` (a change of
  content across ``p``) plus that between the window centred on ``p`` and the power average of the two (a click or
  gap at ``p``). :func:`seam_ratio` compares it at edited-region edges with random points of real audio
  (1 = as smooth as real music).
"""

from __future__ import annotations

import numpy as np

from protocol.errors import InvalidAudio, SilentAudio

LSD_FLOOR_DB = -100.0
SI_SDR_CEIL_DB = 100.0
OUTSIDE_FLOOR_DB = -120.0
MR_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
SEAM_WINDOW = 2048
SEAM_BANDS = 32


def _as_2d(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise InvalidAudio(f"{what} must be (channels, samples), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidAudio(f"{what} contains NaN/Inf")
    return x


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _as_2d(ref, "reference"), _as_2d(est, "estimate")
    if ref.shape != est.shape:
        raise InvalidAudio(f"reference {ref.shape} and estimate {est.shape} differ in shape")
    return ref, est


def hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def stft_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(C, N) -> (C, frames, n_fft // 2 + 1) power; frame ``i`` is centred on sample ``i * hop`` (zero padded)."""
    x = _as_2d(x, "audio")
    pad = n_fft // 2
    xp = np.pad(x, ((0, 0), (pad, pad)))
    n_frames = 1 + max(0, (xp.shape[-1] - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # (frames, n_fft)
    w = hann(n_fft)
    frames = xp[:, idx] * w  # (C, frames, n_fft)
    spec = np.fft.rfft(frames, axis=-1)
    return (spec.real**2 + spec.imag**2) / np.sum(w**2)


def power_db(power: np.ndarray, floor_db: float = LSD_FLOOR_DB) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0)))


def log_spectral_distance(ref: np.ndarray, est: np.ndarray, n_fft: int = 2048, hop: int = 512,
                          floor_db: float = LSD_FLOOR_DB) -> float:
    """LSD in dB (see module docstring)."""
    ref, est = _pair(ref, est)
    d = power_db(stft_power(ref, n_fft, hop), floor_db) - power_db(stft_power(est, n_fft, hop), floor_db)
    return float(np.mean(np.sqrt(np.mean(d**2, axis=-1))))


def mr_stft_distance(ref: np.ndarray, est: np.ndarray, resolutions=MR_RESOLUTIONS) -> float:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1), mean over resolutions."""
    ref, est = _pair(ref, est)
    total = 0.0
    for n_fft, hop in resolutions:
        a = np.sqrt(stft_power(ref, n_fft, hop))
        b = np.sqrt(stft_power(est, n_fft, hop))
        sc = np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)
        mag = np.mean(np.abs(np.log(a + 1e-7) - np.log(b + 1e-7)))
        total += sc + mag
    return float(total / len(resolutions))


def si_sdr(ref: np.ndarray, est: np.ndarray, ceil_db: float = SI_SDR_CEIL_DB) -> float:
    """Scale-invariant SDR (dB) over all channels; raises :class:`SilentAudio` for a silent reference."""
    ref, est = _pair(ref, est)
    r = (ref - ref.mean(axis=-1, keepdims=True)).ravel()
    e = (est - est.mean(axis=-1, keepdims=True)).ravel()
    rr = float(np.dot(r, r))
    if rr <= 1e-20:
        raise SilentAudio("SI-SDR needs a non-silent reference")
    target = (np.dot(e, r) / rr) * r
    noise = e - target
    tn, nn = float(np.dot(target, target)), float(np.dot(noise, noise))
    if nn <= 0.0:
        return ceil_db
    if tn <= 0.0:
        return -ceil_db
    return float(np.clip(10.0 * np.log10(tn / nn), -ceil_db, ceil_db))


def outside_error_db(ref: np.ndarray, est: np.ndarray, start: int, end: int,
                     floor_db: float = OUTSIDE_FLOOR_DB) -> float:
    """Error outside ``[start, end)`` relative to the reference there (dB, floored; see module docstring)."""
    ref, est = _pair(ref, est)
    n = ref.shape[-1]
    if not 0 <= start < end <= n:
        raise InvalidAudio(f"region [{start}, {end}) is not inside {n} samples")
    keep = np.ones(n, dtype=bool)
    keep[start:end] = False
    if not keep.any():
        raise InvalidAudio("the region covers the whole signal: nothing outside it to compare")
    err = float(np.sum((est[:, keep] - ref[:, keep]) ** 2))
    sig = float(np.sum(ref[:, keep] ** 2))
    if err <= 0.0:
        return floor_db
    if sig <= 0.0:
        sig = 1e-20
    return float(max(10.0 * np.log10(err / sig), floor_db))


def _window_db(x: np.ndarray, centre: int, w: int) -> np.ndarray:
    """Power spectrum (C, w//2+1) of the Hann window of length ``w`` centred on ``centre`` (zero padded)."""
    n = x.shape[-1]
    lo, hi = centre - w // 2, centre - w // 2 + w
    seg = np.zeros((x.shape[0], w))
    a, b = max(lo, 0), min(hi, n)
    if b > a:
        seg[:, a - lo:b - lo] = x[:, a:b]
    win = hann(w)
    spec = np.fft.rfft(seg * win, axis=-1)
    return (spec.real**2 + spec.imag**2) / np.sum(win**2)


def _band_matrix(n_fft: int, sr: int = 48_000, bands: int = SEAM_BANDS) -> np.ndarray:
    """(bins, bands) averaging matrix over log-spaced bands from 60 Hz to 20 kHz (each band >= 1 bin)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.geomspace(60.0, 20_000.0, bands + 1)
    m = np.zeros((freqs.size, bands))
    for b in range(bands):
        lo = int(np.searchsorted(freqs, edges[b]))
        hi = max(lo + 1, int(np.searchsorted(freqs, edges[b + 1])))
        m[lo:hi, b] = 1.0 / (hi - lo)
    return m


def _band_lsd(a: np.ndarray, b: np.ndarray) -> float:
    d = power_db(a) - power_db(b)  # (C, bands)
    return float(np.mean(np.sqrt(np.mean(d**2, axis=-1))))


def seam_measure(audio: np.ndarray, position: int, window: int = SEAM_WINDOW) -> float:
    """Discontinuity at ``position`` (dB): content change across it plus transient at it (module docstring)."""
    x = _as_2d(audio, "audio")
    n = x.shape[-1]
    if not 0 <= position <= n:
        raise InvalidAudio(f"seam position {position} outside {n} samples")
    bands = _band_matrix(window)  # (bins, bands)
    left = _window_db(x, position - window // 2, window) @ bands  # (C, bands) power
    right = _window_db(x, position + window // 2, window) @ bands
    centre = _window_db(x, position, window) @ bands
    return _band_lsd(left, right) + _band_lsd(centre, 0.5 * (left + right))


def random_seams(audio: np.ndarray, count: int, rng: np.random.Generator, window: int = SEAM_WINDOW) -> list[float]:
    """Seam measure at ``count`` random positions at least 2 windows away from the ends."""
    x = _as_2d(audio, "audio")
    n = x.shape[-1]
    lo, hi = 2 * window, n - 2 * window
    if hi <= lo:
        raise InvalidAudio(f"audio of {n} samples is too short for seam statistics (window {window})")
    return [seam_measure(x, int(p), window) for p in rng.integers(lo, hi, size=count)]


def seam_ratio(edge_values: list[float], reference_values: list[float]) -> float:
    """Mean seam measure at region edges divided by its mean at random points of real audio."""
    if not edge_values or not reference_values:
        raise InvalidAudio("seam ratio needs edge and reference measurements")
    ref = float(np.mean(reference_values))
    return float(np.mean(edge_values) / max(ref, 1e-9))
