"""Signal metrics on known signals (engine/eval/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.eval.metrics import (
    LSD_FLOOR_DB,
    OUTSIDE_FLOOR_DB,
    SI_SDR_CEIL_DB,
    log_spectral_distance,
    mr_stft_distance,
    outside_error_db,
    random_seams,
    seam_measure,
    seam_ratio,
    si_sdr,
)
from protocol.errors import InvalidAudio, SilentAudio


def _music(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48000)) / 48000
    x = sum(np.sin(2 * np.pi * f * t) * a for f, a in ((110, 0.3), (220, 0.2), (330, 0.1), (1760, 0.05)))
    x = x + 0.01 * rng.standard_normal(t.size)
    return np.stack([x, 0.8 * x]).astype(np.float32)


def test_identity():
    x = _music()
    assert log_spectral_distance(x, x) == 0.0
    assert mr_stft_distance(x, x) == 0.0
    assert si_sdr(x, x) == SI_SDR_CEIL_DB
    assert outside_error_db(x, x, 1000, 5000) == OUTSIDE_FLOOR_DB


def test_si_sdr_known_values():
    x = _music()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2)) * 0.1  # 20 dB below the signal
    assert si_sdr(x, x + noise) == pytest.approx(20.0, abs=0.2)
    assert si_sdr(x, 3.0 * x) == SI_SDR_CEIL_DB  # scale invariant
    assert si_sdr(x, -x) == SI_SDR_CEIL_DB  # a sign flip is a scale too
    assert si_sdr(x, noise) < -15.0  # unrelated
    with pytest.raises(SilentAudio):
        si_sdr(np.zeros_like(x), x)


def test_lsd_and_mrstft_grow_with_distortion():
    x = _music()
    y_small = x * 10 ** (-1 / 20)  # 1 dB quieter: LSD exactly 1 dB where above the floor
    assert log_spectral_distance(x, y_small) == pytest.approx(1.0, abs=0.05)
    noise = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32) * 0.1
    assert log_spectral_distance(x, x + noise) > 5.0
    assert mr_stft_distance(x, x + 0.01 * noise) < mr_stft_distance(x, x + noise)
    silent = np.zeros_like(x)
    assert log_spectral_distance(silent, silent) == 0.0
    assert log_spectral_distance(x, silent) > 50.0  # up to the -100 dB floor
    assert LSD_FLOOR_DB == -100.0
    with pytest.raises(InvalidAudio):
        log_spectral_distance(x, x[:, :-1])


def test_outside_error_ignores_the_region():
    x = _music()
    y = x.copy()
    y[:, 20000:40000] = 0.0  # only the region differs
    assert outside_error_db(x, y, 20000, 40000) == OUTSIDE_FLOOR_DB
    y[:, :20000] += 0.01 * x[:, :20000]  # -40 dB error outside
    outside = np.concatenate([x[:, :20000], x[:, 40000:]], axis=1)
    expected = 10 * np.log10(0.01**2 * np.sum(x[:, :20000] ** 2) / np.sum(outside**2))
    assert outside_error_db(x, y, 20000, 40000) == pytest.approx(expected, abs=1e-3)
    with pytest.raises(InvalidAudio):
        outside_error_db(x, y, 0, x.shape[1])


def test_seam_measure_detects_splices():
    x = _music(4.0)
    spliced = x.copy()
    spliced[:, 96000:] = np.roll(x, 777, axis=1)[:, 96000:]  # phase jump at 2 s
    gap = x.copy()
    gap[:, 96000:] = 0.0  # sudden silence at 2 s
    natural = random_seams(x, 8, np.random.default_rng(0))
    assert len(natural) == 8
    assert seam_measure(gap, 96000) > 3 * np.mean(natural)
    assert seam_measure(spliced, 96000) > 3 * np.mean(natural)
    assert seam_ratio([seam_measure(x, 96000)], natural) < 2.5
    assert seam_ratio([seam_measure(gap, 96000)], natural) > 3.0
    noise = np.random.default_rng(3).standard_normal(x.shape) * np.sqrt(np.mean(x**2))
    switched = x.copy()
    switched[:, 96000:] = noise[:, 96000:]  # same level, other content
    assert seam_measure(switched, 96000) > 3 * np.mean(natural)
