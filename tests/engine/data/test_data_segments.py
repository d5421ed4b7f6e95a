"""Aligned segmenting: same start and end for every stem, exact lengths, padding, silence."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.segments import (
    Segment,
    active_stems,
    is_silent,
    level_db,
    plan_segments,
    random_segment,
    slice_aligned,
)
from protocol.errors import InvalidArgument


def test_plan_segments_exact():
    assert plan_segments(10, 4) == [Segment(0, 4), Segment(4, 8)]
    assert plan_segments(10, 4, hop=3) == [Segment(0, 4), Segment(3, 7), Segment(6, 10)]
    assert plan_segments(10, 4, pad_last=True) == [Segment(0, 4), Segment(4, 8), Segment(8, 12)]
    assert plan_segments(3, 4) == [] and plan_segments(3, 4, pad_last=True) == [Segment(0, 4)]
    assert plan_segments(8, 4, pad_last=True) == [Segment(0, 4), Segment(4, 8)]
    with pytest.raises(InvalidArgument):
        plan_segments(10, 0)


def test_slice_aligned_keeps_stems_in_step():
    k, n = 4, 1000
    ramp = np.arange(n, dtype=np.float32)
    stems = np.stack([np.stack([ramp + 10_000 * i, -(ramp + 10_000 * i)]) for i in range(k)])  # (4, 2, 1000)
    for seg in plan_segments(n, 300, hop=250, pad_last=True):
        out = slice_aligned(stems, seg)
        assert out.shape == (k, 2, 300) and out.dtype == np.float32
        valid = min(seg.end, n) - seg.start
        for i in range(k):
            assert np.array_equal(out[i, 0, :valid], ramp[seg.start:seg.start + valid] + 10_000 * i)
            assert np.array_equal(out[i, 1, :valid], -out[i, 0, :valid])
            assert not out[i, :, valid:].any()
    with pytest.raises(InvalidArgument):
        slice_aligned(stems[0], Segment(0, 10))


def test_random_segment_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        seg = random_segment(1000, 300, rng)
        assert 0 <= seg.start <= 700 and seg.length == 300
    assert random_segment(100, 300, rng) == Segment(0, 300)


def test_silence_and_activity():
    stems = np.zeros((4, 2, 480), dtype=np.float32)
    assert is_silent(stems) and level_db(stems) == float("-inf")
    stems[1] = 0.1  # -20 dBFS
    assert level_db(stems[1]) == pytest.approx(-20.0, abs=1e-4)
    assert not is_silent(stems, -50.0) and is_silent(stems, -10.0)
    assert active_stems(stems).tolist() == [False, True, False, False]
