"""Optional: split full mixes into the four stems with Hybrid Demucs (torchaudio's ``hdemucs_high``).

Demucs sources map to Stemforge stems as drums -> drums, bass -> bass, other -> instrument,
vocals -> melody. The pretrained weights (``HDEMUCS_HIGH_MUSDB_PLUS``, ~320 MB) are downloaded by
torchaudio on first use; offline, pass a local copy of ``hdemucs_high_trained.pt`` with ``weights=``,
otherwise :class:`CheckpointNotFound` says so. The separated folders are ordinary stem folders for
:class:`engine.data.stems.StemFolderDataset`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.audio import AUDIO_EXTENSIONS, load_audio, resample, write_wav
from engine.config import SAMPLE_RATE
from protocol.errors import CheckpointNotFound, InvalidArgument, InvalidAudio

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEMUCS_SOURCES = ("drums", "bass", "other", "vocals")
DEMUCS_RATE = 44_100
SOURCE_TO_STEM = {"drums": "drums", "bass": "bass", "other": "instrument", "vocals": "melody"}


def load_separator(weights: str | Path | None = None) -> "torch.nn.Module":
    """The pretrained ``hdemucs_high`` model (eval mode): from ``weights`` (a state dict file) or torchaudio's hub."""
    import torch
    import torchaudio
    from torchaudio.models import hdemucs_high

    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointNotFound(f"Demucs weights not found: {path}", path=str(path))
        model = hdemucs_high(sources=list(DEMUCS_SOURCES))
        try:
            model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
        except Exception as exc:  # wrong file / architecture
            raise CheckpointNotFound(f"{path.name} is not an hdemucs_high state dict: {exc}") from None
        return model.eval()
    try:
        return torchaudio.pipelines.HDEMUCS_HIGH_MUSDB_PLUS.get_model().eval()
    except Exception as exc:  # no network, blocked download, corrupt cache
        raise CheckpointNotFound(
            "Demucs weights are unavailable (torchaudio could not download HDEMUCS_HIGH_MUSDB_PLUS: "
            f"{type(exc).__name__}). Fetch hdemucs_high_trained.pt on a connected machine and pass its path "
            "as weights= / --weights."
        ) from None


def separate(mix: np.ndarray, model: "torch.nn.Module", segment_s: float = 10.0,
             overlap_s: float = 1.0) -> dict[str, np.ndarray]:
    """Split a float32 (2, N) 48 kHz mix into {bass, drums, instrument, melody}, each (2, N) at 48 kHz.

    Runs the model at 44.1 kHz on overlapping chunks cross-faded linearly, with the mix normalised by
    its mean and standard deviation as Demucs expects.
    """
    import torch

    if mix.ndim != 2 or mix.shape[0] != 2:
        raise InvalidAudio(f"mix must be (2, N), got {mix.shape}")
    n = mix.shape[1]
    x = resample(mix, SAMPLE_RATE, DEMUCS_RATE).astype(np.float64)
    ref = x.mean(axis=0)
    mean, std = float(ref.mean()), float(ref.std()) or 1.0
    x = (x - mean) / std
    m = x.shape[1]
    seg = max(1, int(segment_s * DEMUCS_RATE))
    ov = min(int(overlap_s * DEMUCS_RATE), seg // 2)
    out = np.zeros((len(DEMUCS_SOURCES), 2, m))
    weight = np.zeros(m)
    start = 0
    with torch.inference_mode():
        while start < m:
            end = min(start + seg, m)
            chunk = torch.from_numpy(x[:, start:end].astype(np.float32))[None]
            y = model(chunk)[0].double().numpy()  # (sources, 2, L)
            w = np.ones(end - start)
            if ov and start > 0:
                w[:ov] = np.linspace(0.0, 1.0, ov)
            if ov and end < m:
                w[-ov:] = np.minimum(w[-ov:], np.linspace(1.0, 0.0, ov))
            out[:, :, start:end] += y * w
            weight[start:end] += w
            if end == m:
                break
            start = end - ov
    out = out / np.maximum(weight, 1e-8) * std + mean / len(DEMUCS_SOURCES)
    stems = {}
    for i, src in enumerate(DEMUCS_SOURCES):
        audio = resample(out[i].astype(np.float32), DEMUCS_RATE, SAMPLE_RATE)
        stems[SOURCE_TO_STEM[src]] = np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]
    return stems


def separate_folder(mix_dir: str | Path, out_root: str | Path, weights: str | Path | None = None) -> list[Path]:
    """Every audio file in ``mix_dir`` -> ``out_root/<file stem>/{bass,drums,instrument,melody}.wav``."""
    mix_dir, out_root = Path(mix_dir), Path(out_root)
    files = sorted(p for p in mix_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS) if mix_dir.is_dir() else []
    if not files:
        raise InvalidArgument(f"no audio files in {mix_dir}")
    model = load_separator(weights)
    written = []
    for path in files:
        stems = separate(load_audio(path), model)
        for stem, audio in stems.items():
            write_wav(out_root / path.stem / f"{stem}.wav", audio)
        written.append(out_root / path.stem)
        log.info("separated %s", path.name)
    return written
