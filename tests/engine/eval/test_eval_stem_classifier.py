"""The stem-role classifier on synthetic stems of known role (engine/eval/stem_classifier.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import write_wav
from engine.eval.stem_classifier import FEATURE_DIM, StemClassifier, stem_features, train_or_load
from eval_signals import drum_loop, tonal_stems
from protocol.errors import CheckpointNotFound, InvalidArgument

ROLES = ("bass", "drums", "instrument", "melody")


def _example(role: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if role == "drums":
        return drum_loop(float(rng.integers(80, 140)), seconds=2.0, seed=seed)
    bass, chords, melody = tonal_stems(int(rng.integers(12)), ("major", "minor")[seed % 2], seed=seed)
    x = {"bass": bass, "instrument": chords, "melody": melody}[role][: 2 * 48000]
    return np.stack([x, x]).astype(np.float32)


def test_features_shape():
    f = stem_features(_example("bass", 0))
    assert f.shape == (FEATURE_DIM,) and np.all(np.isfinite(f))


def test_fit_predict_and_cache(tmp_path):
    train = [(role, s) for s in range(3) for role in ROLES]
    paths = []
    for role, s in train:
        paths.append((write_wav(tmp_path / "train" / f"{s}" / f"{role}.wav", _example(role, s)), role))
    loads = []

    def load(p):
        loads.append(p)
        from engine.audio import load_audio
        return load_audio(p)

    clf = train_or_load(paths, ROLES, tmp_path / "cache", load)
    assert len(loads) == len(paths)
    test = [(role, s) for s in range(10, 13) for role in ROLES]
    pred = clf.predict([_example(role, s) for role, s in test])
    acc = np.mean([p == role for p, (role, _) in zip(pred, test)])
    assert acc >= 0.9, list(zip(pred, test))
    again = train_or_load(paths, ROLES, tmp_path / "cache", load)  # cached: no audio read
    assert len(loads) == len(paths)
    feats = np.stack([stem_features(_example(r, s)) for r, s in test])
    assert np.array_equal(again.predict_proba(feats), clf.predict_proba(feats))
    assert again.classes == ROLES


def test_bad_input(tmp_path):
    with pytest.raises(InvalidArgument):
        StemClassifier.fit(np.zeros((2, FEATURE_DIM)), ["bass", "kazoo"], ROLES)
    with pytest.raises(CheckpointNotFound):
        StemClassifier.load(tmp_path / "missing.npz")
