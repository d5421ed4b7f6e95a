"""Multitrack datasets (torch-free): user stem folders and the studio corpus, cut into aligned snippets.

Stem folder layout (one folder per song; any format libsndfile reads, any sample rate, mono or stereo)::

    ROOT/<song>/bass.wav  drums.flac  instrument.aiff  melody.ogg     (missing stems allowed)
    ROOT/captions.jsonl   {"id": "<song>", "caption": "...", "bpm": 100, "key": "E", "mode": "minor"}
    or ROOT/captions.csv  id,caption[,bpm,key,mode]

Every item loads as float32 ``(k, 2, N)`` at 48 kHz in stem order (bass, drums, instrument,
melody), a missing stem as zeros with ``present[i] = False``. Examples (one aligned snippet each)::

    {"audio": (k, 2, n) float32, "present": (k,) bool, "caption": str, "bpm": float (0.0 = unknown),
     "key": str ("" = unknown), "mode": str, "id": str, "start": int}
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.audio import AUDIO_EXTENSIONS, load_audio, num_samples
from engine.config import DEFAULT_STEMS, SAMPLE_RATE
from engine.data.segments import Segment, is_silent, plan_segments, random_segment, slice_aligned
from protocol.errors import InvalidArgument, InvalidAudio

log = logging.getLogger(__name__)

_ID_FIELDS = ("id", "song", "folder", "name")
_CAPTION_FIELDS = ("caption", "text", "prompt", "description")


@dataclass
class MultitrackItem:
    id: str
    paths: dict[str, Path | None]  # stem -> file (None = missing)
    caption: str = ""
    bpm: float = 0.0
    key: str = ""
    mode: str = ""
    meta: dict = field(default_factory=dict)

    def present(self, stems: Sequence[str]) -> np.ndarray:
        return np.array([self.paths.get(s) is not None for s in stems], dtype=bool)


def read_captions(path: str | Path) -> dict[str, dict]:
    """Caption records keyed by song id from a JSONL or CSV file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(f"caption file not found: {path}")
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:  # tolerate a BOM (spreadsheet exports)
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"{path.name} line {n}: invalid JSON ({exc.msg})") from None
    else:
        raise InvalidArgument(f"caption file must be .jsonl or .csv, got {path.name}")
    out: dict[str, dict] = {}
    for n, row in enumerate(rows, start=1):
        sid = next((str(row[k]) for k in _ID_FIELDS if row.get(k) not in (None, "")), None)
        if sid is None:
            raise InvalidArgument(f"{path.name} record {n} has no song id (one of {_ID_FIELDS})")
        caption = next((str(row[k]) for k in _CAPTION_FIELDS if row.get(k) not in (None, "")), "")
        out[sid] = {**row, "caption": caption}
    return out


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class MultitrackSource:
    """A list of multitrack items with loading and aligned segmenting (base of both datasets)."""

    def __init__(self, items: list[MultitrackItem], stems: Sequence[str] = DEFAULT_STEMS) -> None:
        self.items = items
        self.stems = tuple(stems)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (k, 2, N) float32, present (k,) bool); stems of unequal length are zero-padded to the longest."""
        item = self.items[index]
        present = item.present(self.stems)
        loaded = [load_audio(item.paths[s]) if ok else None for s, ok in zip(self.stems, present)]
        lengths = [a.shape[1] for a in loaded if a is not None]
        if not lengths:
            raise InvalidAudio(f"item {item.id} has none of the stems {self.stems}")
        n = max(lengths)
        if n - min(lengths) > SAMPLE_RATE // 100:  # more than resampling rounding: worth a look
            log.warning("item %s: stem lengths differ (%d..%d samples); padding to %d", item.id, min(lengths), n, n)
        audio = np.zeros((len(self.stems), 2, n), dtype=np.float32)
        for i, a in enumerate(loaded):
            if a is not None:
                audio[i, :, : a.shape[1]] = a
        return audio, present

    def example(self, index: int, audio: np.ndarray, present: np.ndarray, seg: Segment) -> dict:
        item = self.items[index]
        return {"audio": slice_aligned(audio, seg), "present": present.copy(), "caption": item.caption,
                "bpm": float(item.bpm), "key": item.key, "mode": item.mode, "id": item.id, "start": seg.start}

    def segments(self, seconds: float, hop_seconds: float | None = None, silence_db: float | None = -50.0,
                 pad_last: bool = False) -> Iterator[dict]:
        """Every aligned snippet of every item in order (non-overlapping unless ``hop_seconds`` < ``seconds``).

        ``silence_db``: drop snippets whose mix RMS is below this level (None keeps all).
        """
        length = num_samples(seconds)
        hop = num_samples(hop_seconds) if hop_seconds else length
        for index in range(len(self.items)):
            audio, present = self.load(index)
            for seg in plan_segments(audio.shape[-1], length, hop, pad_last=pad_last):
                ex = self.example(index, audio, present, seg)
                if silence_db is not None and is_silent(ex["audio"], silence_db):
                    continue
                yield ex

    def random_segments(self, seconds: float, rng: np.random.Generator, silence_db: float | None = -50.0,
                        max_tries: int = 8) -> Iterator[dict]:
        """Endless random snippets: a random item, a random start (retrying silent snippets)."""
        if not self.items:
            raise InvalidArgument("dataset is empty")
        length = num_samples(seconds)
        while True:
            index = int(rng.integers(len(self.items)))
            audio, present = self.load(index)
            for _ in range(max_tries):
                ex = self.example(index, audio, present, random_segment(audio.shape[-1], length, rng))
                if silence_db is None or not is_silent(ex["audio"], silence_db):
                    yield ex
                    break


def _find_stem_file(folder: Path, stem: str) -> Path | None:
    hits = sorted(p for p in folder.iterdir()
                  if p.is_file() and p.stem.lower() == stem and p.suffix.lower() in AUDIO_EXTENSIONS)
    if len(hits) > 1:
        log.warning("%s: several files for stem %s, using %s", folder.name, stem, hits[0].name)
    return hits[0] if hits else None


class StemFolderDataset(MultitrackSource):
    """User data: ROOT/<song>/<stem>.<ext>, captions from ``captions`` (default ROOT/captions.jsonl|csv)."""

    def __init__(self, root: str | Path, captions: str | Path | None = None,
                 stems: Sequence[str] = DEFAULT_STEMS) -> None:
        root = Path(root)
        if not root.is_dir():
            raise InvalidArgument(f"stem folder dataset not found: {root}")
        if captions is None:
            captions = next((root / n for n in ("captions.jsonl", "captions.csv") if (root / n).is_file()), None)
        records = read_captions(captions) if captions is not None else {}
        items = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            paths = {s: _find_stem_file(folder, s) for s in stems}
            if not any(paths.values()):
                log.warning("skipping %s: no files named %s", folder, "/".join(stems))
                continue
            rec = records.get(folder.name, {})
            if not rec:
                log.warning("no caption for %s", folder.name)
            items.append(MultitrackItem(folder.name, paths, rec.get("caption", ""), _float(rec.get("bpm")),
                                        str(rec.get("key") or ""), str(rec.get("mode") or ""), rec))
        if not items:
            raise InvalidArgument(f"no song folders with stems {stems} in {root}")
        missing = sum(int((~it.present(stems)).sum()) for it in items)
        log.info("stem folders: %d songs from %s (%d missing stems)", len(items), root, missing)
        super().__init__(items, stems)


class StudioCorpus(MultitrackSource):
    """A corpus written by ``stemforge studio render`` (reads DIR/metadata.jsonl; all stems present)."""

    def __init__(self, root: str | Path, stems: Sequence[str] = DEFAULT_STEMS) -> None:
        root = Path(root)
        meta_path = root / "metadata.jsonl"
        if not meta_path.is_file():
            raise InvalidArgument(f"not a studio corpus (no metadata.jsonl): {root}")
        items = []
        for line in meta_path.read_text().splitlines():
            if not line.strip():
                continue
            m = json.loads(line)
            paths: dict[str, Path | None] = {s: root / m["id"] / f"{s}.wav" for s in stems}
            items.append(MultitrackItem(m["id"], paths, m.get("caption", ""), float(m.get("bpm", 0.0)),
                                        m.get("key", ""), m.get("mode", ""), m))
        if not items:
            raise InvalidArgument(f"studio corpus {root} is empty")
        super().__init__(items, stems)
