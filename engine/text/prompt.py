"""Prompt text: JEN-1 Composer task prefixes (section 4.2) and tempo / key folded into the caption.

    task_prefix(["bass", "drums"], [], "generate")   -> "[bass & drums generation]"
    task_prefix(["melody"], ["bass"], "inpaint")    -> "[melody inpainting]"
    task_prefix([...], [...], "continue")           -> "[continuation]"
    build_prompt("funk", bpm=100, key="Em", task_prefix="[bass generation]")
                                                     -> "[bass generation] funk, 100 bpm, E minor"
    build_prompt("funk at 90 bpm in A minor", bpm=120, key="Em")
                                                     -> "funk at 120 bpm in E minor"

An explicit ``bpm`` / ``key`` (the DAW session's tempo, the request's key) wins over one the prompt text names: it
takes that mention's place, so the caption, the tempo/key attributes read off it and the beat clock all follow the
session's grid rather than a number typed into the prompt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from engine.config import DEFAULT_STEMS
from protocol.errors import InvalidArgument, UnknownStem

TASKS = ("generate", "inpaint", "continue")
_TASK_WORD = {"generate": "generation", "inpaint": "inpainting"}

_KEY_RE = re.compile(
    r"^\s*([A-Ga-g])\s*(#|b|♯|♭|sharp|flat)?\s*(major|minor|maj|min|m|M|dur|moll)?\s*$"
)


# a tempo / a key inside free text (engine.text.attributes reads the same matches)
BPM_IN_TEXT = re.compile(r"(?<![\w.])(\d{2,3}(?:\.\d+)?)\s*-?\s*bpm\b", re.IGNORECASE)
KEY_IN_TEXT = re.compile(r"(?<![\w#])[A-G]\s*(?:#|b|♯|♭|sharp|flat)?\s*(?:major|minor|maj|min)\b")


def normalize_key(key: str) -> str:
    """'Em' / 'e min' / 'E minor' -> 'E minor'; 'Bb' / 'B flat major' -> 'Bb major'; 'F#m' -> 'F# minor'."""
    m = _KEY_RE.match(str(key))
    if not m:
        raise InvalidArgument(f"unrecognised key {key!r}; use e.g. 'E minor', 'Em', 'Bb major', 'F#'", key=str(key))
    root, accidental, mode = m.groups()
    acc = {"#": "#", "♯": "#", "sharp": "#", "b": "b", "♭": "b", "flat": "b"}.get(accidental or "", "")
    minor = mode in ("minor", "min", "m", "moll")
    return f"{root.upper()}{acc} {'minor' if minor else 'major'}"


def format_bpm(bpm: float) -> str:
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)) or not math.isfinite(bpm) or not 1 <= bpm <= 999:
        raise InvalidArgument(f"bpm must be a number in 1..999, got {bpm!r}", bpm=str(bpm))
    return f"{int(round(bpm))} bpm" if abs(bpm - round(bpm)) < 1e-6 else f"{bpm:.1f} bpm"


def _ordered(stems: Sequence[str], known: Sequence[str]) -> list[str]:
    unknown = [s for s in stems if s not in known]
    if unknown:
        raise UnknownStem(f"unknown stem(s) {unknown}; known: {list(known)}", stems=list(unknown))
    return [s for s in known if s in set(stems)]


def task_prefix(generate_stems: Sequence[str], given_stems: Sequence[str] = (), task: str = "generate",
                stems: Sequence[str] = DEFAULT_STEMS) -> str:
    """The Composer task token for this request, stems in the model's canonical order.

    ``given_stems`` (clean conditioning stems, t = 0) are validated but not named: the timestep vector already
    tells the model which stems are given; the prefix names what to produce.
    """
    if task not in TASKS:
        raise InvalidArgument(f"unknown task {task!r}; known: {list(TASKS)}", task=str(task))
    gen = _ordered(generate_stems, stems)
    given = _ordered(given_stems, stems)
    both = sorted(set(gen) & set(given))
    if both:
        raise InvalidArgument(f"stems {both} cannot be both generated and given")
    if task == "continue":
        return "[continuation]"
    if not gen:
        raise InvalidArgument(f"task {task!r} needs at least one stem to produce")
    return f"[{' & '.join(gen)} {_TASK_WORD[task]}]"


def build_prompt(prompt: str | None, bpm: float | None = None, key: str | None = None,
                 task_prefix: str | None = None) -> str:
    """Caption text for the text encoder: ``"<prefix> <prompt>, <bpm> bpm, <key>"`` (parts present only); a
    tempo or key the prompt already names is replaced in place by the explicit one instead."""
    text = (prompt or "").strip().strip(",").strip()
    tail = []
    if bpm is not None:
        word = format_bpm(bpm)
        text, named = BPM_IN_TEXT.subn(word, text)
        if not named:
            tail.append(word)
    if key is not None and str(key).strip():
        word = normalize_key(key)
        text, named = KEY_IN_TEXT.subn(word, text)
        if not named:
            tail.append(word)
    body = ", ".join(p for p in [text, *tail] if p)
    prefix = (task_prefix or "").strip()
    return f"{prefix} {body}".strip() if prefix else body
