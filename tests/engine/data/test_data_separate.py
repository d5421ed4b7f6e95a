"""Demucs separation: stem mapping and exact lengths with a small real HDemucs; clear errors without weights."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.separate import DEMUCS_SOURCES, load_separator, separate, separate_folder
from protocol.errors import CheckpointNotFound

torch = pytest.importorskip("torch")


def test_separate_maps_sources_to_stems_with_exact_length():
    from torchaudio.models import HDemucs

    torch.manual_seed(0)
    model = HDemucs(list(DEMUCS_SOURCES), channels=4, depth=4, nfft=1024).eval()
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, 50_001))).astype(np.float32)  # 1.04 s at 48 kHz
    stems = separate(mix, model, segment_s=0.4, overlap_s=0.1)  # several overlapping chunks
    assert sorted(stems) == ["bass", "drums", "instrument", "melody"]
    for audio in stems.values():
        assert audio.shape == (2, 50_001) and audio.dtype == np.float32 and np.isfinite(audio).all()
    whole = separate(mix, model, segment_s=10.0)
    assert whole["bass"].shape == (2, 50_001)


def test_missing_or_wrong_weights_raise_checkpoint_not_found(tmp_path):
    with pytest.raises(CheckpointNotFound, match="not found"):
        load_separator(tmp_path / "hdemucs_high_trained.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"nope": torch.zeros(1)}, str(bad))
    with pytest.raises(CheckpointNotFound, match="not an hdemucs_high state dict"):
        load_separator(bad)
    import soundfile as sf

    (tmp_path / "mixes").mkdir()
    sf.write(tmp_path / "mixes" / "song.wav", np.zeros((4800, 2)), 48_000)
    with pytest.raises(CheckpointNotFound):
        separate_folder(tmp_path / "mixes", tmp_path / "out", weights=tmp_path / "missing.pt")
