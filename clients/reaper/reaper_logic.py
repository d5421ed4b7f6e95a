"""What the REAPER script decides, apart from REAPER's API (tested with pytest, no REAPER needed).

- :func:`selection_region`: REAPER's time selection (seconds) -> a protocol Region in samples at
  48 kHz (exact: no decimal rounding surprises), and the session length that covers it.
- :func:`session_fields`: the daemon session for the project (tempo at the selection start, time
  signature, length) as ``session.create`` / ``session.update`` fields.
- :func:`job_fields`: the fields of a ``generate`` (all stems / the unkept ones) or ``inpaint`` request.
- :func:`placements`: where each returned take goes: a track named after its stem, at the take's
  start on the project timeline (the selection start), and which tracks must be created.
- :func:`error_text`: a daemon error shown as the daemon wrote it (``code: message``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SAMPLE_RATE = 48_000
MODES = ("generate", "regenerate", "inpaint")


@dataclass(frozen=True)
class Selection:
    """REAPER's time selection in project seconds (``GetSet_LoopTimeRange``)."""

    start: float
    end: float


@dataclass(frozen=True)
class Placement:
    stem: str
    track_name: str
    track_index: int | None  # None: create a track named ``track_name`` first
    path: str
    position: float  # project seconds
    take_id: str


class SelectionError(ValueError):
    """No usable time selection (shown to the user; never sent to the daemon)."""


def to_sample(seconds: float) -> int:
    """Seconds -> the nearest sample at 48 kHz, ties upward (as the daemon rounds)."""
    return int((seconds * SAMPLE_RATE) + 0.5) if seconds >= 0 else -int((-seconds * SAMPLE_RATE) + 0.5)


def selection_region(sel: Selection) -> dict[str, Any]:
    """The selection as a Region in samples; refuses an empty or negative selection."""
    start, end = to_sample(sel.start), to_sample(sel.end)
    if start < 0:
        raise SelectionError(f"the time selection starts before the project start ({sel.start:.3f} s)")
    if end <= start:
        raise SelectionError("make a time selection first (drag in the ruler); it is empty")
    return {"unit": "samples", "start": start, "end": end}


def session_fields(name: str, bpm: float, time_signature: Sequence[int], sel: Selection,
                   current: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Fields to create (``current`` None) or update the session; None when it already fits."""
    end = selection_region(sel)["end"]
    ts = [int(time_signature[0]), int(time_signature[1])]
    bpm = round(float(bpm), 6)
    if current is None:
        return {"name": name, "bpm": bpm, "time_signature": ts, "length": end, "length_unit": "samples"}
    if (abs(float(current["bpm"]) - bpm) < 1e-9 and list(current["time_signature"]) == ts
            and int(current["length_samples"]) >= end):
        return None
    return {"session_id": current["session_id"], "bpm": bpm, "time_signature": ts,
            "length": max(end, int(current["length_samples"])), "length_unit": "samples"}


def job_fields(mode: str, session: dict[str, Any], sel: Selection, prompt: str = "",
               stems: Iterable[str] | None = None, steps: int | None = None, seed: int | None = None) -> tuple[str, dict[str, Any]]:
    """(request type, fields) for ``mode``: generate (every stem, nothing given), regenerate (the
    stems not kept, given the kept ones) or inpaint (``stems`` inside the selection)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    fields: dict[str, Any] = {"session_id": session["session_id"], "prompt": prompt, "region": selection_region(sel)}
    if steps is not None:
        fields["steps"] = int(steps)
    if seed is not None:
        fields["seed"] = int(seed)
    all_stems = [s["name"] for s in session.get("stems", [])]
    if mode == "generate":
        fields["stems"] = list(stems) if stems else all_stems
        fields["keep"] = {}
        return "generate", fields
    if mode == "regenerate":
        fields["stems"] = []
        return "generate", fields
    chosen = list(stems or [])
    if not chosen:
        raise SelectionError("inpaint needs at least one stem: select tracks named after stems (bass, drums, ...)")
    fields["stems"] = chosen
    return "inpaint", fields


def stems_of_tracks(track_names: Iterable[str], stems: Iterable[str]) -> list[str]:
    """The stems that selected tracks stand for (a track "Bass" or "bass 2" is the bass stem)."""
    known = list(stems)
    out: list[str] = []
    for name in track_names:
        n = name.strip().lower()
        for stem in known:
            if (n == stem or n.startswith(stem + " ")) and stem not in out:
                out.append(stem)
    return out


def find_track(track_names: Sequence[str], stem: str) -> int | None:
    """Index of the first track named after ``stem`` (case-insensitive), or None."""
    for i, name in enumerate(track_names):
        if name.strip().lower() == stem.lower():
            return i
    return None


def placements(takes: Iterable[Any], track_names: Sequence[str]) -> list[Placement]:
    """Each take on the track named after its stem, at its timeline start (project seconds)."""
    out = []
    for take in takes:
        t = take if isinstance(take, dict) else vars(take)
        rate = int(t.get("sample_rate") or SAMPLE_RATE)
        index = find_track(track_names, t["stem"])
        out.append(Placement(stem=t["stem"], track_name=t["stem"], track_index=index, path=t["path"],
                             position=int(t.get("start_sample", 0)) / rate, take_id=t["take_id"]))
    return out


def progress_text(kind: str, step: int, total: int, stage: str = "") -> str:
    pct = f" {100 * step // total}%" if total else ""
    return f"Stemforge {kind}: {stage or 'working'}{pct}"


def error_text(exc: BaseException) -> str:
    """The daemon's error as it wrote it: ``code: message`` (other errors: their class and text)."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code}: {message}" if code else f"{type(exc).__name__}: {message}"


__all__ = ["Selection", "Placement", "SelectionError", "selection_region", "session_fields", "job_fields",
           "stems_of_tracks", "find_track", "placements", "progress_text", "error_text", "to_sample", "MODES"]
