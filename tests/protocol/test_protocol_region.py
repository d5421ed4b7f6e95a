"""Region resolution: exact sample indices at 48 kHz for every unit, and every refusal."""

from __future__ import annotations

from fractions import Fraction

import pytest

from protocol.errors import InvalidArgument, RegionError
from protocol.records import Region
from protocol.region import position_to_samples, resolve_length, resolve_region

TOTAL = 48_000 * 600


def bars(start: float, end: float, start_beat: float = 1.0, end_beat: float = 1.0) -> Region:
    return Region(unit="bars", start=start, end=end, start_beat=start_beat, end_beat=end_beat)


def test_120_bpm_4_4_bar_2_starts_at_96000() -> None:
    assert resolve_region(bars(2, 3), total_samples=TOTAL, bpm=120, time_signature=(4, 4)) == (96_000, 192_000)
    assert resolve_region(bars(1, 2), total_samples=TOTAL) == (0, 96_000)
    # bar 2 beat 3 = 1 bar + 2 quarter notes = 96000 + 48000
    assert resolve_region(bars(2, 3, start_beat=3), total_samples=TOTAL) == (144_000, 192_000)
    # fractional beat: beat 1.5 is an eighth note in
    assert resolve_region(bars(1, 1, end_beat=1.5), total_samples=TOTAL) == (0, 12_000)


def test_7_8() -> None:
    # at 120 bpm an eighth note is 12000 samples; a 7/8 bar is 7 eighths = 84000 samples
    ts = (7, 8)
    assert resolve_region(bars(2, 3), total_samples=TOTAL, bpm=120, time_signature=ts) == (84_000, 168_000)
    assert resolve_region(bars(2, 2, start_beat=4, end_beat=7.5), total_samples=TOTAL, bpm=120,
                          time_signature=ts) == (84_000 + 3 * 12_000, 84_000 + 6 * 12_000 + 6_000)
    with pytest.raises(RegionError, match=r"beat must be in \[1, 8\)"):
        resolve_region(bars(1, 2, start_beat=8), total_samples=TOTAL, time_signature=ts)


def test_6_8_and_3_4_and_2_2() -> None:
    assert resolve_region(bars(3, 4), total_samples=TOTAL, bpm=90, time_signature=(6, 8)) == (192_000, 288_000)
    assert resolve_region(bars(2, 3), total_samples=TOTAL, bpm=60, time_signature=(3, 4)) == (144_000, 288_000)
    assert resolve_region(bars(2, 3), total_samples=TOTAL, bpm=120, time_signature=(2, 2)) == (96_000, 192_000)


def test_fractional_tempo_rounds_to_nearest() -> None:
    # 97.3 bpm: one quarter note = 60 / 97.3 * 48000 = 28_800_000 / 973 = 29599.178... samples
    assert resolve_region(Region(unit="beats", start=0, end=1), total_samples=TOTAL, bpm=97.3) == (0, 29_599)
    # 4 beats = 118396.71 -> 118397 (rounded once, not 4 x 29599)
    assert resolve_region(Region(unit="beats", start=1, end=4), total_samples=TOTAL, bpm=97.3) == (29_599, 118_397)
    assert position_to_samples(4, "beats", bpm=97.3) == Fraction(4 * 28_800_000, 973)
    # 7/8 at 133.33 bpm: bar 2 at 3.5 qn = 3.5 * 2_880_000 / 133.33 = 75601.89 -> 75602
    assert resolve_region(bars(2, 3), total_samples=TOTAL, bpm=133.33, time_signature=(7, 8))[0] == 75_602


def test_decimal_values_are_exact() -> None:
    # 0.1 s is exactly 4800 samples, though 0.1 is not exact in binary
    assert resolve_region(Region(unit="seconds", start=0.1, end=0.3), total_samples=TOTAL) == (4_800, 14_400)
    assert resolve_region(Region(unit="seconds", start=2.0, end=4.0), total_samples=TOTAL) == (96_000, 192_000)
    # quarter-note beats ignore the time signature
    assert resolve_region(Region(unit="beats", start=4, end=8), total_samples=TOTAL, bpm=120,
                          time_signature=(7, 8)) == (96_000, 192_000)


def test_ties_round_up() -> None:
    # 3.125e-05 s = 1.5 samples -> 2; 9.375e-05 s = 4.5 samples -> 5 (not 4 as round-half-even would give)
    assert resolve_region(Region(unit="seconds", start=0.00003125, end=0.00009375), total_samples=TOTAL) == (2, 5)
    # 128 bpm: a quarter note is 22500 samples; 1/45000 qn = 0.5 samples -> 1
    assert resolve_region(Region(unit="beats", start=0, end=Fraction(1, 45_000)),  # type: ignore[arg-type]
                          total_samples=TOTAL, bpm=128) == (0, 1)


def test_samples_unit_is_identity() -> None:
    assert resolve_region(Region(unit="samples", start=17, end=48_017), total_samples=48_017) == (17, 48_017)
    with pytest.raises(RegionError, match="whole number"):
        resolve_region(Region(unit="samples", start=0.5, end=10), total_samples=TOTAL)


def test_none_is_the_whole_timeline() -> None:
    assert resolve_region(None, total_samples=384_000) == (0, 384_000)
    with pytest.raises(RegionError):
        resolve_region(None, total_samples=None)


@pytest.mark.parametrize(("region", "match"), [
    (Region(unit="seconds", start=1, end=1), "empty"),
    (Region(unit="seconds", start=2, end=1), "empty"),
    (Region(unit="samples", start=5, end=5), "empty"),
    (Region(unit="seconds", start=0, end=0.00001), "empty"),  # 0.48 samples rounds to 0
    (Region(unit="seconds", start=-1, end=1), "before the timeline"),
    (Region(unit="beats", start=-0.5, end=1), "before the timeline"),
    (Region(unit="seconds", start=-0.00001, end=1), "before the timeline"),  # would round to sample 0
    (Region(unit="seconds", start=0, end=10.00002), "past the end"),  # 480000.96 -> 480001
    (Region(unit="samples", start=0, end=480_001), "past the end"),
    (Region(unit="bars", start=3, end=7), "past the end"),  # bar 7 starts at 576000 > 480000
    (Region(unit="bars", start=0, end=2), "1-based"),
    (Region(unit="bars", start=1.5, end=2), "whole number"),
    (Region(unit="bars", start=1, end=2, start_beat=0), "1-based"),
])
def test_refused(region: Region, match: str) -> None:
    with pytest.raises(RegionError, match=match) as info:
        resolve_region(region, total_samples=480_000, bpm=120, time_signature=(4, 4))
    assert info.value.code == "invalid_region"


def test_unknown_unit() -> None:
    with pytest.raises(InvalidArgument, match="region.unit"):
        Region(unit="ticks", start=0, end=1)  # type: ignore[arg-type]
    with pytest.raises(RegionError, match="unknown region unit"):
        position_to_samples(1, "ticks")


def test_past_the_end_boundary() -> None:
    # 10.00001 s = 480000.48 samples rounds to 480000: inside
    assert resolve_region(Region(unit="seconds", start=0, end=10.00001), total_samples=480_000) == (0, 480_000)
    assert resolve_region(Region(unit="seconds", start=0, end=10), total_samples=480_000) == (0, 480_000)
    assert resolve_region(Region(unit="seconds", start=0, end=10), total_samples=None) == (0, 480_000)


def test_bad_tempo_and_time_signature() -> None:
    with pytest.raises(RegionError, match="tempo"):
        resolve_region(Region(unit="beats", start=0, end=1), total_samples=TOTAL, bpm=0)
    with pytest.raises(RegionError, match="time signature"):
        resolve_region(bars(1, 2), total_samples=TOTAL, time_signature=(4, 3))


def test_resolve_length() -> None:
    assert resolve_length(8, "bars", bpm=120, time_signature=(4, 4)) == 768_000
    assert resolve_length(4, "bars", bpm=120, time_signature=(7, 8)) == 336_000
    assert resolve_length(30, "seconds") == 1_440_000
    assert resolve_length(16, "beats", bpm=96) == 480_000
    assert resolve_length(48_000, "samples") == 48_000
    with pytest.raises(RegionError):
        resolve_length(0, "seconds")
