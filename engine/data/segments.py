"""Aligned snippets across stems: every stem of a snippet has the same start and end (JEN-1 Composer, sec. 5).

numpy only. A multitrack is an array ``(k, 2, N)`` (stems, channels, samples) at 48 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Segment:
    start: int  # first sample (inclusive)
    end: int  # last sample (exclusive); end - start is the segment length

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_segments(num_frames: int, length: int, hop: int | None = None, pad_last: bool = False) -> list[Segment]:
    """Start/end pairs of snippets of ``length`` samples every ``hop`` samples (default: no overlap).

    A multitrack shorter than ``length`` gives one padded segment when ``pad_last`` is set, else none.
    With ``pad_last`` a final partial snippet is kept (it will be zero-padded by :func:`slice_aligned`).
    """
    if length < 1:
        raise InvalidArgument(f"segment length must be at least 1 sample, got {length}")
    hop = length if hop is None else hop
    if hop < 1:
        raise InvalidArgument(f"segment hop must be at least 1 sample, got {hop}")
    if num_frames < 0:
        raise InvalidArgument(f"negative length {num_frames}")
    segs = [Segment(s, s + length) for s in range(0, num_frames - length + 1, hop)]
    if pad_last:
        nxt = segs[-1].start + hop if segs else 0
        if nxt < num_frames and (not segs or segs[-1].end < num_frames):
            segs.append(Segment(nxt, nxt + length))
    return segs


def random_segment(num_frames: int, length: int, rng: np.random.Generator) -> Segment:
    """One snippet at a uniformly random start (start 0 with padding when the audio is shorter)."""
    if length < 1:
        raise InvalidArgument(f"segment length must be at least 1 sample, got {length}")
    start = int(rng.integers(0, num_frames - length + 1)) if num_frames > length else 0
    return Segment(start, start + length)


def slice_aligned(stems: np.ndarray, seg: Segment) -> np.ndarray:
    """``stems[..., start:end]`` for every stem at once, zero-padded past the end: (k, C, seg.length)."""
    if stems.ndim != 3:
        raise InvalidArgument(f"stems must be (k, channels, samples), got shape {stems.shape}")
    if seg.start < 0 or seg.end <= seg.start:
        raise InvalidArgument(f"invalid segment {seg.start}..{seg.end}")
    out = stems[..., seg.start:seg.end]
    if out.shape[-1] < seg.length:
        out = np.pad(out, ((0, 0), (0, 0), (0, seg.length - out.shape[-1])))
    return np.ascontiguousarray(out, dtype=np.float32)


def level_db(audio: np.ndarray) -> float:
    """RMS level in dBFS of any array (-inf for digital silence)."""
    ms = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * np.log10(ms) if ms > 0 else float("-inf")


def is_silent(stems: np.ndarray, threshold_db: float = -50.0) -> bool:
    """True when the snippet's mix (sum of the stems) is below ``threshold_db`` RMS."""
    return level_db(stems.sum(axis=0)) < threshold_db


def active_stems(stems: np.ndarray, threshold_db: float = -60.0) -> np.ndarray:
    """Per stem: whether it carries signal above ``threshold_db`` RMS in this snippet, bool (k,)."""
    return np.array([level_db(s) >= threshold_db for s in stems], dtype=bool)
