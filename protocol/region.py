"""Region resolution: seconds, samples, quarter-note beats or bars/beats -> exact 48 kHz sample indices.

:func:`resolve_region` is the one place where a timeline position becomes a sample index; the daemon,
the clients and the tests all use it.

Units (``Region.unit``):

- ``samples``  sample index at 48 kHz; must be a whole number.
- ``seconds``  seconds from the session start: ``s * 48000``.
- ``beats``    0-based offset in quarter notes (Ableton Live's song time, REAPER's QN) at ``bpm``
  quarter notes per minute: ``qn * 60 / bpm * 48000``. The time signature does not matter.
- ``bars``     a DAW position, 1-based: bar ``start`` beat ``start_beat``. A beat is one note of the
  time signature's denominator (an eighth note in 7/8), so bar ``b`` beat ``x`` is at
  ``((b - 1) * numerator + (x - 1)) * 4 / denominator`` quarter notes. Bars must be whole numbers
  >= 1; beats may be fractional, in ``[1, numerator + 1)``. ``end`` bar 5 beat 1 is the first
  sample *after* bar 4: a region ``bars 2..4`` covers bars 2 and 3.

Rounding rule: the position is computed exactly with rational arithmetic on the decimal value of
every number as it is written (``0.1`` is one tenth, not the nearest binary double), and rounded to
the nearest sample, ties upward (``floor(x + 1/2)``). So 120 bpm 4/4 bar 2 starts at sample 96000,
and 97.3 bpm beat 1 at ``round(28_800_000 / 973) = 29599``.

The end is exclusive. A region is refused with :class:`RegionError` when it is empty after
rounding, starts before 0 (checked before rounding), or ends past ``total_samples``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from protocol.errors import RegionError
from protocol.records import SAMPLE_RATE, Region

_UNITS = ("samples", "seconds", "beats", "bars")


def _exact(value: float | int | Fraction, what: str) -> Fraction:
    """The decimal value as written: ``Fraction(repr(x))`` for floats, so 0.1 == 1/10."""
    if isinstance(value, bool):
        raise RegionError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegionError(f"{what} must be finite, got {value!r}")
        return Fraction(repr(value))
    raise RegionError(f"{what} must be a number, got {type(value).__name__}")


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _quarter_notes_of_bar(bar: Fraction, beat: Fraction, time_signature: tuple[int, int], what: str) -> Fraction:
    num, den = time_signature
    if bar.denominator != 1 or bar < 1:
        raise RegionError(f"{what} bar must be a whole number >= 1 (bars are 1-based), got {float(bar):g}")
    if not (1 <= beat < num + 1):
        raise RegionError(f"{what} beat must be in [1, {num + 1}) for {num}/{den} (beats are 1-based), "
                          f"got {float(beat):g}")
    return ((bar - 1) * num + (beat - 1)) * Fraction(4, den)


def position_to_samples(value: float | int | Fraction, unit: str, *, bpm: float | Fraction = 120.0,
                        time_signature: tuple[int, int] = (4, 4), beat: float | int | Fraction = 1,
                        sample_rate: int = SAMPLE_RATE, what: str = "position") -> Fraction:
    """Exact (unrounded) sample position of one point; ``beat`` is used for ``bars`` only."""
    v = _exact(value, what)
    if unit == "samples":
        if v.denominator != 1:
            raise RegionError(f"{what} in samples must be a whole number, got {float(v)}")
        return v
    if unit == "seconds":
        return v * sample_rate
    tempo = _exact(bpm, "tempo")
    if tempo <= 0:
        raise RegionError(f"tempo must be > 0 bpm, got {float(tempo):g}")
    samples_per_qn = Fraction(60) / tempo * sample_rate
    if unit == "beats":
        return v * samples_per_qn
    if unit == "bars":
        num, den = time_signature
        if num < 1 or den < 1 or den & (den - 1):
            raise RegionError(f"invalid time signature {num}/{den}")
        return _quarter_notes_of_bar(v, _exact(beat, what + " beat"), time_signature, what) * samples_per_qn
    raise RegionError(f"unknown region unit {unit!r} (known: {', '.join(_UNITS)})")


def resolve_region(region: Region | None, *, total_samples: int | None, bpm: float | Fraction = 120.0,
                   time_signature: tuple[int, int] = (4, 4), sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Resolve ``region`` to exact sample indices ``(start, end)``, end exclusive, at ``sample_rate``.

    ``region`` None is the whole timeline ``(0, total_samples)``. ``total_samples`` None skips the
    past-the-end check. Raises :class:`RegionError` for an empty, negative or past-the-end region or a
    malformed position (see the module docstring for units and the rounding rule).
    """
    if region is None:
        if total_samples is None:
            raise RegionError("no region given and no total length to default to")
        if total_samples <= 0:
            raise RegionError(f"the timeline is empty ({total_samples} samples)")
        return 0, int(total_samples)
    start_x = position_to_samples(region.start, region.unit, beat=_beat(region.start_beat), what="region start",
                                  bpm=bpm, time_signature=time_signature, sample_rate=sample_rate)
    end_x = position_to_samples(region.end, region.unit, beat=_beat(region.end_beat), what="region end",
                                bpm=bpm, time_signature=time_signature, sample_rate=sample_rate)
    start, end = _round_half_up(start_x), _round_half_up(end_x)
    shown = _describe(region)
    if start_x < 0:  # refused before rounding: -0.00001 s is a mistake, not sample 0
        raise RegionError(f"region {shown} starts before the timeline (sample {float(start_x):g})",
                          start=start, end=end)
    if end <= start:
        raise RegionError(f"region {shown} is empty (samples {start}..{end})", start=start, end=end)
    if total_samples is not None and end > total_samples:
        raise RegionError(f"region {shown} ends at sample {end}, past the end of the timeline "
                          f"({total_samples} samples = {total_samples / sample_rate:g} s)",
                          start=start, end=end, total=int(total_samples))
    return start, end


def resolve_length(length: float | int, unit: str, *, bpm: float | Fraction = 120.0,
                   time_signature: tuple[int, int] = (4, 4), sample_rate: int = SAMPLE_RATE) -> int:
    """Sample count of a session length given in any unit (``bars``: that many whole bars)."""
    if unit == "bars":
        region = Region(unit="bars", start=1, end=1 + length)
    else:
        region = Region(unit=unit, start=0, end=length)  # type: ignore[arg-type]
    return resolve_region(region, total_samples=None, bpm=bpm, time_signature=time_signature,
                          sample_rate=sample_rate)[1]


def _beat(beat: float | None) -> float:
    return 1 if beat is None else beat


def _describe(region: Region) -> str:
    s, e = float(region.start), float(region.end)
    if region.unit == "bars":
        return (f"bar {s:g} beat {float(_beat(region.start_beat)):g} .. bar {e:g} "
                f"beat {float(_beat(region.end_beat)):g}")
    return f"{s:g}..{e:g} {region.unit}"
