"""Tempo, beat-grid and onset estimation on synthetic drum loops of known tempo (engine/eval/tempo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.eval.tempo import beat_phase, estimate_tempo, grid_distances_ms, onset_times, tempo_matches
from protocol.errors import InvalidAudio
from eval_signals import bass_on_grid, drum_loop


@pytest.mark.parametrize("bpm", [72.0, 97.0, 123.0, 140.0])
def test_tempo_of_drum_loop(bpm):
    est = estimate_tempo(drum_loop(bpm, seed=int(bpm)))
    assert tempo_matches(est, bpm), est
    assert abs(est - bpm) / bpm < 0.01


def test_octave_errors_are_misses():
    assert tempo_matches(103.9, 100.0) and not tempo_matches(104.1, 100.0)
    assert not tempo_matches(50.0, 100.0) and not tempo_matches(200.0, 100.0)


def test_beat_phase_and_grid_alignment():
    bpm, phase = 110.0, 0.2
    drums = drum_loop(bpm, phase=phase)
    est_phase = beat_phase(drums, bpm)
    assert abs(est_phase - phase) < 0.015  # onset-detector latency, equal for every stem
    aligned = grid_distances_ms(onset_times(bass_on_grid(bpm, 8.0, phase)), bpm, est_phase)
    shifted = grid_distances_ms(onset_times(bass_on_grid(bpm, 8.0, phase, offset_s=0.06)), bpm, est_phase)
    assert len(aligned) >= 25
    assert np.median(aligned) < 8.0
    assert np.median(shifted) > 25.0


def test_onsets_count_and_bad_input():
    ons = onset_times(bass_on_grid(120.0, 4.0, 0.25))
    assert len(ons) == 15  # eighths from 0.25 s to 4 s
    with pytest.raises(InvalidAudio):
        estimate_tempo(np.zeros((2, 100), np.float32))
    with pytest.raises(InvalidAudio):
        estimate_tempo(np.zeros((2, 48000), np.float32))
