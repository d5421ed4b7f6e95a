"""Random fixed-length crops from a folder tree of rendered stems and mixes (autoencoder training data).

Files are named by role (``bass.wav``, ``drums.wav``, ``instrument.wav``, ``melody.wav``, ``mix.wav``) anywhere
under the root, e.g. the synthetic studio's ``DIR/<item>/<role>.wav``. Hidden folders (renders in progress) are
skipped and :meth:`CropSampler.refresh` picks up files added later.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.audio import load_audio
from engine.config import SAMPLE_RATE
from protocol.errors import InvalidArgument

ROLES = ("bass", "drums", "instrument", "melody", "mix")


class CropSampler:
    """Random fixed-length crops from a folder tree of WAV/FLAC files named by role (``bass.wav``, ``mix.wav``...).

    Files at 48 kHz are read partially (soundfile seek); others are loaded whole once, resampled and cached.
    A near-silent crop (RMS < 1e-4) is redrawn up to 3 times, so silence stays in the data but rarely.
    """

    def __init__(self, root: str | Path, roles: tuple[str, ...] = ROLES) -> None:
        self.root = Path(root)
        self.roles = roles
        if not self.root.is_dir():
            raise InvalidArgument(f"--data {self.root}: not a folder")
        self.files: list[Path] = []
        self.frames: list[int] = []
        self.rates: list[int] = []
        self._cache: dict[int, np.ndarray] = {}
        self.refresh()
        if not self.files:
            raise InvalidArgument(f"--data {self.root}: no audio files named {'/'.join(roles)} (.wav/.flac) found")

    def refresh(self) -> int:
        """Pick up files added since the last scan (a corpus still being rendered); returns how many were added.

        Hidden folders (``.tmp-*`` renders in progress) are skipped.
        """
        known = set(self.files)
        found: list[Path] = []
        for folder, dirs, names in os.walk(self.root):  # os.walk ignores folders vanishing mid-scan
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                path = Path(folder) / name
                if path.suffix.lower() in (".wav", ".flac") and path.stem in self.roles and path not in known:
                    found.append(path)
        added = 0
        for path in found:
            try:
                info = sf.info(str(path))
            except Exception:  # vanished or being written
                continue
            if info.frames > 0:
                self.files.append(path)
                self.frames.append(int(round(info.frames * SAMPLE_RATE / info.samplerate)))
                self.rates.append(int(info.samplerate))
                added += 1
        return added

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int, start: int, length: int) -> np.ndarray:
        """Samples [start, start + length) of file ``index`` as float32 (2, length), zero-padded past the end."""
        if self.rates[index] == SAMPLE_RATE:
            data, _ = sf.read(str(self.files[index]), start=start, stop=start + length, dtype="float32",
                              always_2d=True)  # (n, C)
            audio = data.T
            if audio.shape[0] == 1:
                audio = np.repeat(audio, 2, axis=0)
            audio = audio[:2]
        else:
            if index not in self._cache:
                self._cache[index] = load_audio(self.files[index])
            audio = self._cache[index][:, start:start + length]
        if audio.shape[1] < length:
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        return np.ascontiguousarray(audio, dtype=np.float32)

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
        """(batch, 2, length) random crops; channels swapped at random (augmentation)."""
        out = np.zeros((batch, 2, length), dtype=np.float32)
        for b in range(batch):
            for _attempt in range(4):
                i = int(rng.integers(len(self.files)))
                start = int(rng.integers(max(1, self.frames[i] - length + 1)))
                crop = self.read(i, start, length)
                if float(np.sqrt(np.mean(crop**2))) >= 1e-4:
                    break
            out[b] = crop[::-1] if rng.random() < 0.5 else crop
        return torch.from_numpy(out)

    def fixed_clips(self, n: int, length: int, seed: int = 1234) -> torch.Tensor:
        """n deterministic crops (same every call): the held-out evaluation set. (n, 2, length)."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.files))
        clips = []
        for k in range(n):
            i = int(order[k % len(order)])
            start = int(rng.integers(max(1, self.frames[i] - length + 1)))
            clips.append(self.read(i, start, length))
        return torch.from_numpy(np.stack(clips))
