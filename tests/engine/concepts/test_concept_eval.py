"""The concept evaluation's measures on synthetic audio (the full ``concept eval`` renders and trains; it is run by
hand: see docs/concepts.md)."""

from __future__ import annotations

import numpy as np
import pytest

from concept_helpers import tone
from engine.concepts.evaluate import ConceptEvalOptions, Embedding, _prompts, format_table, mean_cosine, score
from protocol.errors import InvalidArgument


def noise(seconds: float, seed: int) -> np.ndarray:
    x = 0.05 * np.random.default_rng(seed).standard_normal(int(seconds * 48_000))
    return np.stack([x, x]).astype(np.float32)


def test_audio_alignment_prefers_the_same_sound() -> None:
    background = [tone(2.0, f, seed=i) for i, f in enumerate((110, 220, 880, 1760))] + [noise(2.0, s) for s in (1, 2)]
    embed = Embedding(background)
    high = [embed(tone(2.0, 1320.0, seed=s)) for s in range(3)]
    low = [embed(noise(2.0, 10 + s)) for s in range(3)]
    assert mean_cosine(high[:1], high[1:]) > 0.4  # same sound, other noise; 6 background stems only
    assert mean_cosine(high, low) < mean_cosine(high, high) - 0.5
    assert mean_cosine([np.array([1.0, 0.0])], [np.array([0.0, 2.0]), np.array([-3.0, 0.0])]) == pytest.approx(-0.5)


def test_score_and_prompts() -> None:
    items = [{"genre": "funk", "bpm": 100.0, "key": "E", "mode": "minor"}]
    prompts = _prompts(items, 2, "<k_0> <k_1>")
    assert prompts[0] == {"prompt": "a funk track with <k_0> <k_1>", "bpm": 100.0, "key": "E minor"}
    assert _prompts(items, 1, None)[0]["prompt"] == "a funk track"
    embed = Embedding([tone(1.0, 220.0), noise(1.0, 0), tone(1.0, 990.0)])
    clip = {"bass": tone(2.0, 82.4), "drums": noise(2.0, 3), "instrument": tone(2.0, 329.6), "melody": tone(2.0, 660)}
    s = score([clip, clip], prompts, embed, [embed(tone(2.0, 660.0))], [embed(noise(2.0, 5))])
    assert s["audio_alignment"] > 0.9 > s["audio_alignment_other"]
    assert 0.0 <= s["tempo_adherence"] <= 1.0 and 0.0 <= s["key_adherence"] <= 1.0
    row = {"method": "pivotal", "tuned_parameters": 5, "minutes_per_concept": 1.0, **s}
    text = format_table({"rows": [row], "joint": None, "model": "tiny", "model_hash": "ab" * 32, "trained": False,
                         "embedding": "log-mel", "total_minutes": 1.0})
    assert "pivotal" in text and "UNTRAINED" in text
    with pytest.raises(InvalidArgument):
        ConceptEvalOptions(methods=("lora",)).validate()
