"""Thin torch wrappers over :mod:`engine.data.stems` (the only data module that imports torch).

``SegmentDataset``: a map-style dataset of aligned snippets (fixed index of (item, start) pairs), with a
small LRU cache of decoded items so consecutive snippets of one song are decoded once.
``RandomSegmentDataset``: an iterable dataset of endless random snippets (a seeded generator per worker).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from engine.audio import num_samples
from engine.data.segments import Segment, plan_segments
from engine.data.stems import MultitrackSource


def _to_torch(ex: dict) -> dict:
    out = dict(ex)
    out["audio"] = torch.from_numpy(ex["audio"])
    out["present"] = torch.from_numpy(ex["present"])
    return out


class SegmentDataset(Dataset):
    """Every aligned snippet of ``seconds`` (hop ``hop_seconds``) of every item; ``audio``: (k, 2, n) float32."""

    def __init__(self, source: MultitrackSource, seconds: float, hop_seconds: float | None = None,
                 pad_last: bool = False, cache_items: int = 4) -> None:
        self.source = source
        self.length = num_samples(seconds)
        hop = num_samples(hop_seconds) if hop_seconds else self.length
        self.index: list[tuple[int, Segment]] = []
        for i, item in enumerate(source.items):
            n = int(item.meta.get("num_samples", 0))
            if n <= 0:  # length unknown without decoding (user folders)
                n = source.load(i)[0].shape[-1]
            self.index.extend((i, seg) for seg in plan_segments(n, self.length, hop, pad_last=pad_last))
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_items = cache_items

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        data = self.source.load(i)
        self._cache[i] = data
        while len(self._cache) > self._cache_items:
            self._cache.popitem(last=False)
        return data

    def __getitem__(self, idx: int) -> dict:
        i, seg = self.index[idx]
        audio, present = self._load(i)
        return _to_torch(self.source.example(i, audio, present, seg))


class RandomSegmentDataset(IterableDataset):
    """Endless random aligned snippets; each DataLoader worker draws from its own seeded generator."""

    def __init__(self, source: MultitrackSource, seconds: float, seed: int = 0,
                 silence_db: float | None = -50.0) -> None:
        self.source = source
        self.seconds = seconds
        self.seed = seed
        self.silence_db = silence_db

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, worker]))
        for ex in self.source.random_segments(self.seconds, rng, self.silence_db):
            yield _to_torch(ex)
