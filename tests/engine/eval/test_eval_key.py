"""Key/mode estimation on synthetic progressions of known key (engine/eval/key.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.eval.key import chroma, estimate_key, key_name, parse_key
from eval_signals import tonal_stems, tone
from protocol.errors import InvalidArgument, InvalidAudio


def test_key_of_synthetic_progressions():
    hits = 0
    for tonic in range(12):
        mode = ("major", "minor")[tonic % 2]
        hits += estimate_key(tonal_stems(tonic, mode, seed=tonic)) == (tonic, mode)
    assert hits >= 11  # of 12 (all 24 keys pass today; one miss allowed)


def test_chroma_of_a_single_tone():
    c = chroma(tone(57, 1.0))  # A3 with harmonics 1, 2, 3 -> A, A, E
    assert c.shape == (12,)
    assert int(np.argmax(c)) == 9
    assert c[4] > c[1] and c[4] > c[7]  # the third harmonic (E) is present


def test_parse_key_names():
    assert parse_key("E minor") == (4, "minor")
    assert parse_key("Bb", "major") == (10, "major")
    assert parse_key("F#m") == (6, "minor")
    assert parse_key("Db", "minor") == (1, "minor")
    assert parse_key("C") == (0, "major")
    assert key_name(*parse_key("Eb minor")) == "D# minor"
    with pytest.raises(InvalidArgument):
        parse_key("H minor")
    with pytest.raises(InvalidArgument):
        parse_key("C", "dorian")


def test_silence_has_no_key():
    with pytest.raises(InvalidAudio):
        estimate_key([np.zeros(48000)])


def test_relative_keys_share_a_diatonic_collection():
    from engine.eval.key import relative_major
    from engine.eval.runner import key_hits

    assert relative_major(9, "minor") == relative_major(0, "major") == 0  # A minor / C major
    assert relative_major(4, "minor") == 7 and relative_major(7, "major") == 7  # E minor / G major
    assert relative_major(0, "minor") == 3 != relative_major(0, "major")  # parallel keys differ
    stems = list(tonal_stems(9, "minor", seed=3))
    assert estimate_key(stems) == (9, "minor")
    assert key_hits(stems, (9, "minor")) == (1.0, 1.0)
    assert key_hits(stems, (0, "major")) == (0.0, 1.0)  # the relative major: right notes, wrong tonic
    assert key_hits(stems, (9, "major")) == (0.0, 0.0)
    assert key_hits([np.zeros(48000)], (0, "major")) == (0.0, 0.0)  # no pitched content: a miss, no raise
