"""Audio I/O and validation shared by the CLI, the data pipeline and the daemon.

numpy + soundfile + scipy only (no torch), so transports can validate uploads cheaply.
All audio inside Stemforge is float32, shape ``(2, N)`` (channels first), 48 kHz.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from engine.config import SAMPLE_RATE
from protocol.errors import InvalidAudio, NonFiniteAudio

AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")


def resample(audio: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling with a Kaiser-windowed FIR (beta 8.6, high stop-band rejection).

    ``audio``: (C, N). Output length is ``round(N * sr_out / sr_in)`` exactly.
    """
    if sr_in == sr_out:
        return np.ascontiguousarray(audio, dtype=np.float32)
    if sr_in <= 0:
        raise InvalidAudio(f"invalid sample rate {sr_in}")
    ratio = Fraction(sr_out, sr_in).limit_denominator(10_000)
    out = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1,
                        window=("kaiser", 8.6))
    target = int(round(audio.shape[-1] * sr_out / sr_in))
    if out.shape[-1] < target:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, target - out.shape[-1])])
    return np.ascontiguousarray(out[..., :target], dtype=np.float32)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """(N,) or (C, N) -> (2, N): mono is duplicated, more than two channels are refused."""
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise InvalidAudio(f"audio must be (channels, samples), got shape {audio.shape}")
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] == 2:
        return audio
    raise InvalidAudio(f"expected mono or stereo audio, got {audio.shape[0]} channels")


def check_finite(audio: np.ndarray, what: str = "audio") -> None:
    if not np.all(np.isfinite(audio)):
        bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
        raise NonFiniteAudio(f"{what} contains {bad} NaN/Inf samples", samples=bad)


def prepare(audio: np.ndarray, sample_rate: int, what: str = "audio") -> np.ndarray:
    """Validate and convert any (N,) / (C, N) array to float32 (2, N) at 48 kHz."""
    audio = np.asarray(audio)
    if audio.size == 0:
        raise InvalidAudio(f"{what} is empty")
    audio = to_stereo(audio.astype(np.float32, copy=False))
    check_finite(audio, what)
    return resample(audio, sample_rate, SAMPLE_RATE)


def load_audio(path: str | Path) -> np.ndarray:
    """Read any file libsndfile reads and return float32 (2, N) at 48 kHz."""
    path = Path(path)
    if not path.is_file():
        raise InvalidAudio(f"audio file not found: {path}", path=str(path))
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except Exception as exc:  # libsndfile raises a bare RuntimeError/LibsndfileError
        raise InvalidAudio(f"cannot read {path.name}: {exc}", path=str(path)) from None
    return prepare(data.T, int(sr), what=path.name)


def load_audio_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """Same as :func:`load_audio` for an in-memory file (WAV/FLAC/OGG...)."""
    import io

    try:
        arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InvalidAudio(f"cannot decode {name}: {exc}") from None
    return prepare(arr.T, int(sr), what=name)


def write_wav(path: str | Path, audio: np.ndarray, subtype: str = "PCM_24",
              sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (2, N) float32 as WAV. Never normalised or limited (PCM clips at full scale)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_finite(audio, path.name)
    sf.write(str(path), np.ascontiguousarray(audio.T), sample_rate, subtype=subtype, format="WAV")
    return path


def num_samples(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Exact frame count for a duration: round(seconds * sample_rate)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidAudio(f"duration must be a positive number of seconds, got {seconds}")
    return int(round(seconds * sample_rate))
