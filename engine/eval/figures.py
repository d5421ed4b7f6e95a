"""Spectrogram pictures for the model card: a tiny PNG writer (zlib + struct, no matplotlib) and a colormap.

:func:`spectrogram_png` draws panels stacked vertically (e.g. original above reconstruction), each a log-power
spectrogram (n_fft 2048, hop 512, frequency axis log-spaced from 30 Hz to 24 kHz, 80 dB range below the loudest
bin of all panels), separated by a white line.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.config import SAMPLE_RATE
from engine.eval.metrics import power_db, stft_power
from protocol.errors import InvalidArgument

# anchor colours of a dark-to-bright perceptual map (close to "magma")
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                     [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as an 8-bit RGB PNG."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InvalidArgument(f"PNG image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[row].tobytes() for row in range(h))  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB (shape + (3,))."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    return np.round(_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).astype(np.uint8)


def _log_frequency_rows(spec_db: np.ndarray, height: int, sr: int, n_fft: int) -> np.ndarray:
    """(frames, bins) dB -> (height, frames), row 0 = highest frequency, log-spaced 30 Hz .. sr/2."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    targets = np.geomspace(30.0, sr / 2, height)[::-1]
    idx = np.clip(np.searchsorted(freqs, targets), 0, freqs.size - 1)
    return spec_db[:, idx].T


def spectrogram_png(path: str | Path, panels: Sequence[np.ndarray], height: int = 200, range_db: float = 80.0,
                    sr: int = SAMPLE_RATE, n_fft: int = 2048, hop: int = 512) -> Path:
    """Stack the log-power spectrograms of ``panels`` ((2, N) or (N,) audio each) into one PNG."""
    if not panels:
        raise InvalidArgument("nothing to draw")
    dbs = []
    for audio in panels:
        x = np.asarray(audio, dtype=np.float64)
        x = x.mean(axis=0) if x.ndim == 2 else x
        dbs.append(_log_frequency_rows(power_db(stft_power(x, n_fft, hop))[0], height, sr, n_fft))
    top = max(float(d.max()) for d in dbs)
    width = max(d.shape[1] for d in dbs)
    rows = []
    for i, d in enumerate(dbs):
        img = np.zeros((height, width))
        img[:, : d.shape[1]] = (d - (top - range_db)) / range_db
        rows.append(colormap(img))
        if i < len(dbs) - 1:
            rows.append(np.full((2, width, 3), 255, dtype=np.uint8))
    return write_png(path, np.concatenate(rows, axis=0))
