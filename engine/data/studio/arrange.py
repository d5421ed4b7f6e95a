"""Procedural arrangements: one multitrack song sketch (notes per stem) from a seed.

Everything here is symbolic (beats, MIDI pitches); rendering lives in ``render.py`` / ``synth.py``.
Onsets and durations are in beats at a constant tempo; swing and humanisation are applied at
the end, so the "grid" positions stay available for tests (``humanize=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.data.studio import styles as S
from engine.data.studio.theory import (
    DRUM_KITS,
    GM_PROGRAMS,
    HELD_OUT_PROGRAMS,
    PROGRESSIONS,
    Chord,
    Key,
    nearest_pitch,
)
from protocol.errors import InvalidArgument

STEMS = ("bass", "drums", "instrument", "melody")
DRUM_CHANNEL = 9  # MIDI channel 10
BEATS_PER_BAR = 4
_VEL = {"x": 112, "o": 88, "g": 42}


@dataclass
class Note:
    start: float  # beats from the start
    dur: float  # beats
    pitch: int
    velocity: int


@dataclass
class Part:
    stem: str
    program: int  # GM program (drums: kit preset number in bank 128)
    channel: int
    notes: list[Note] = field(default_factory=list)
    role: str = ""  # comp / bass / melody style, for captions


@dataclass
class Arrangement:
    genre: str
    bpm: float
    key: Key
    mood: str
    bars: int
    seconds: float
    swing: float
    parts: dict[str, Part]
    progression: list[int]  # scale degree per chord slot
    chords_per_bar: int
    held_out_program: int | None = None

    @property
    def time_signature(self) -> str:
        return f"{BEATS_PER_BAR}/4"

    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    def instrument_names(self) -> dict[str, str]:
        out = {}
        for stem, part in self.parts.items():
            kit = f"{DRUM_KITS.get(part.program, 'Standard')} Kit"
            out[stem] = kit if stem == "drums" else GM_PROGRAMS[part.program]
        return out


def _choice(rng: np.random.Generator, seq):  # type: ignore[no-untyped-def]
    return seq[int(rng.integers(len(seq)))]


# ---------------------------------------------------------------------------------- harmony
def _chord_at(arr_chords: list[Chord], cpb: int, beat: float) -> Chord:
    slot = int(beat // (BEATS_PER_BAR / cpb))
    return arr_chords[slot % len(arr_chords)]


# ---------------------------------------------------------------------------------- drums
def make_drums(style: S.Style, bars: int, rng: np.random.Generator) -> list[Note]:
    pattern = _choice(rng, style.drums)
    notes: list[Note] = []
    for bar in range(bars):
        fill = bar % 4 == 3 and rng.random() < style.fill_prob
        for key, steps in pattern.items():
            n = len(steps)
            for i in range(16):
                ch = steps[(bar * 16 + i) % n]
                if ch == ".":
                    continue
                if fill and i >= 12 and key in (S.SNARE, S.KICK, S.CLAP, S.SIDE_STICK):
                    continue  # the fill replaces the last beat of the backbeat
                notes.append(Note(bar * 4 + i / 4, 0.25, key, _VEL[ch]))
        if fill:
            toms = [S.SNARE, S.HIGH_TOM, S.MID_TOM, S.LOW_TOM]
            steps = [12, 13, 14, 15] if rng.random() < 0.6 else [12, 14]
            for j, i in enumerate(steps):
                notes.append(Note(bar * 4 + i / 4, 0.25, toms[min(j, 3)] if style.name != "techno" else S.CLAP,
                                  96 + 4 * j))
        if bar % 4 == 0 and style.name not in ("techno", "jazz swing", "lo-fi") and (bar > 0 or rng.random() < 0.5):
            notes.append(Note(bar * 4, 1.0, S.CRASH, 100))
    return notes


# ---------------------------------------------------------------------------------- bass
def _bass_root(chord: Chord) -> int:
    return nearest_pitch(chord.root, 38)  # around D2: E1..B2 depending on the root


def _step_toward(key: Key, pitch: int, target: int) -> int:
    """A scale tone one step from ``target`` on the side of ``pitch`` (a diatonic approach note)."""
    scale = key.scale_pitches(target - 4, target + 4)
    below = [p for p in scale if p < target]
    above = [p for p in scale if p > target]
    if pitch <= target and below:
        return below[-1]
    return above[0] if above else target


def make_bass(style: S.Style, key: Key, chords: list[Chord], cpb: int, bars: int,
              rng: np.random.Generator) -> list[Note]:
    notes: list[Note] = []
    kind = style.bass_style
    lo, hi = S.BASS_RANGE
    for bar in range(bars):
        for half in range(2):
            beat0 = bar * 4 + half * 2
            chord = _chord_at(chords, cpb, beat0)
            nxt = _chord_at(chords, cpb, beat0 + 2)
            root = _bass_root(chord)
            fifth = root + ((chord.pcs[2] - chord.root) % 12)
            third = root + ((chord.pcs[1] - chord.root) % 12)
            octave = root + 12 if root + 12 <= hi else root
            seventh = root + ((chord.pcs[3] - chord.root) % 12) if len(chord.pcs) > 3 else octave
            nroot = _bass_root(nxt)
            changing = nxt.root != chord.root
            new_chord = half == 0 or chord != _chord_at(chords, cpb, beat0 - 2)
            if kind == "eighths":
                for i in range(4):
                    p = root
                    if i == 3 and changing and rng.random() < 0.6:
                        p = _step_toward(key, root, nroot)
                    elif i == 2 and rng.random() < 0.2:
                        p = octave
                    notes.append(Note(beat0 + i * 0.5, 0.45, p, 100 if i % 2 == 0 else 84))
            elif kind == "ballad":
                if new_chord or rng.random() < 0.5:
                    notes.append(Note(beat0, 1.9 if half else 1.45, root if new_chord else fifth, 92))
                    if half == 0:
                        notes.append(Note(beat0 + 1.5, 0.45, fifth if rng.random() < 0.5 else root, 76))
                if half == 1 and changing:
                    notes.append(Note(beat0 + 1.5, 0.45, _step_toward(key, root, nroot), 80))
            elif kind == "funk":
                tmpl = _choice(rng, ("x..x..o.", "x.o..x.o", "x..xo..x", "x.xo..x."))
                for i, ch in enumerate(tmpl):
                    if ch == ".":
                        continue
                    p = octave if ch == "o" else (root if i == 0 else _choice(rng, (root, root, seventh, fifth)))
                    dur = 0.2 if i % 2 else 0.35
                    notes.append(Note(beat0 + i * 0.25, dur, p, 108 if i == 0 else 88))
            elif kind == "hiphop":
                tmpl = _choice(rng, ("x......x", "x.....x.", "x..x....", "x......."))
                hits = [i for i, ch in enumerate(tmpl) if ch == "x"]
                for j, i in enumerate(hits):
                    end = hits[j + 1] if j + 1 < len(hits) else 8
                    p = root if j == 0 else _choice(rng, (root, fifth, octave))
                    notes.append(Note(beat0 + i * 0.25, (end - i) * 0.25 * 0.9, p, 100))
            elif kind == "house":
                for i in range(2):
                    p = octave if (i == 1 and rng.random() < 0.3) else root
                    notes.append(Note(beat0 + i + 0.5, 0.4, p, 100))
            elif kind == "rolling":
                for i in range(8):
                    if i % 4 == 0:
                        continue  # space for the kick
                    notes.append(Note(beat0 + i * 0.25, 0.2, root if i % 4 != 3 else octave, 92 if i % 2 else 76))
            elif kind == "walking":  # quarter notes: root, chord tones, diatonic approach to the next root
                if new_chord:
                    notes.append(Note(beat0, 0.9, root, 94))
                    notes.append(Note(beat0 + 1, 0.9, _choice(rng, (third, fifth)), 84))
                else:
                    target = nroot if changing else _choice(rng, (fifth, octave))
                    notes.append(Note(beat0, 0.9, _choice(rng, (fifth, third, octave)), 90))
                    notes.append(Note(beat0 + 1, 0.9, _step_toward(key, notes[-1].pitch, target), 84))
            elif kind == "reggae":
                if half == 0:
                    notes.append(Note(beat0, 0.9, root, 104))
                    notes.append(Note(beat0 + 1.5, 0.4, _choice(rng, (third, fifth)), 88))
                else:
                    notes.append(Note(beat0 + 0.5, 0.45, fifth, 92))
                    notes.append(Note(beat0 + 1.0, 0.9, _choice(rng, (root, octave, third)), 96))
            elif kind == "dnb":
                if half == 0:
                    notes.append(Note(beat0, 2.4, root, 110))
                else:
                    notes.append(Note(beat0 + 0.5, 1.4, _choice(rng, (root, root, fifth)), 100))
            elif kind == "lofi":
                if half == 0:
                    notes.append(Note(beat0, 1.4, root, 96))
                    notes.append(Note(beat0 + 1.5, 0.45, _choice(rng, (fifth, octave)), 78))
                else:
                    notes.append(Note(beat0 + 0.5, 1.3, _choice(rng, (fifth, root, seventh)), 86))
            else:  # pragma: no cover - styles are validated by the table
                raise InvalidArgument(f"unknown bass style {kind!r}")
    return [n for n in notes if lo <= n.pitch <= hi] or notes


# ---------------------------------------------------------------------------------- comping
def _voicing(chord: Chord, center: float, size: int) -> list[int]:
    """``size`` chord tones (root, third, fifth[, seventh]) closest to ``center`` (voice leading)."""
    lo, hi = S.COMP_RANGE
    out = sorted(nearest_pitch(pc, int(round(center))) for pc in chord.pcs[:size])
    return [p + 12 if p < lo else p - 12 if p > hi else p for p in out]


_COMP_RHYTHMS = {
    "stabs": ("..x...x...x..x..", ".x..x..x..x.x...", "x..x..x...x..x..", "..x..x....x..x.x"),
    "skank": ("....x.......x...", "..x...x...x...x."),
    "jazz": ("x.....x.........", "x.....x.....x...", "...x......x....."),
    "strum": ("x.x.x.x.x.x.x.x.", "x..x..x.x.x.x.x.", "x.x.x.xxx.x.x.x."),
    "block": ("x...x...x...x...", "x.......x...x..."),
}


def make_comp(style: S.Style, key: Key, chords: list[Chord], cpb: int, bars: int, comp_style: str,
              rng: np.random.Generator) -> list[Note]:
    notes: list[Note] = []
    center = 64.0
    rhythm = _choice(rng, _COMP_RHYTHMS.get(comp_style, ("x",)))
    span = BEATS_PER_BAR / cpb
    for slot in range(bars * cpb):
        beat0 = slot * span
        chord = _chord_at(chords, cpb, beat0)
        voicing = _voicing(chord, center, style.chord_size)
        center = 0.7 * center + 0.3 * float(np.mean(voicing))
        if comp_style == "pad":
            notes.extend(Note(beat0, span * 0.98, p, 72) for p in voicing)
        elif comp_style in ("broken", "arp"):
            step = 0.5 if comp_style == "broken" or style.bpm[0] > 150 else 0.25
            seq = voicing + voicing[1:-1][::-1] if comp_style == "broken" else voicing + [voicing[0] + 12]
            n = int(round(span / step))
            for i in range(n):
                p = seq[i % len(seq)]
                if comp_style == "broken" and i == 0:
                    p = min(voicing) - 12 if min(voicing) - 12 >= S.COMP_RANGE[0] - 5 else min(voicing)
                dur = step * (1.8 if comp_style == "broken" else 0.8)
                notes.append(Note(beat0 + i * step, dur, p, 80 if i % 2 == 0 else 66))
        else:
            steps = 16 // cpb
            for i in range(steps):
                ch = rhythm[(int(beat0 * 4) + i) % 16]
                if ch != "x":
                    continue
                dur = {"stabs": 0.2, "skank": 0.22, "jazz": 0.8, "strum": 0.45, "block": 0.95}[comp_style]
                vel = 92 if comp_style in ("stabs", "strum") else 78
                notes.extend(Note(beat0 + i / 4, dur, p, vel) for p in voicing)
    return notes


# ---------------------------------------------------------------------------------- melody
def _motif(style: S.Style, key: Key, chords: list[Chord], cpb: int, bar0: int, nbars: int,
           lo: int, hi: int, start_idx: int, rng: np.random.Generator,
           rhythm: list[list[float]] | None = None) -> tuple[list[Note], list[list[float]], int]:
    """A phrase of ``nbars`` bars: rhythm cells + a scale random walk with chord tones on strong beats."""
    scale = key.scale_pitches(lo, hi)
    cells = rhythm or [list(_choice(rng, style.melody_cells)) for _ in range(nbars)]
    idx = start_idx
    notes: list[Note] = []
    for b, cell in enumerate(cells):
        t = float((bar0 + b) * BEATS_PER_BAR)
        for j, d in enumerate(cell):
            if d < 0:
                t += -d
                continue
            step = int(rng.choice([-3, -2, -1, 0, 1, 2, 3], p=[0.06, 0.14, 0.27, 0.1, 0.27, 0.1, 0.06]))
            idx = int(np.clip(idx + step, 0, len(scale) - 1))
            pitch = scale[idx]
            chord = _chord_at(chords, cpb, t)
            strong = abs(t - round(t)) < 1e-6 and int(round(t)) % 2 == 0
            last = b == len(cells) - 1 and j == len(cell) - 1
            if (strong or last or d >= 2) and not chord.contains(pitch):
                tones = [i for i, p in enumerate(scale) if chord.contains(p)]
                idx = min(tones, key=lambda i: abs(i - idx))
                pitch = scale[idx]
            notes.append(Note(t, d * (0.92 if not last else 0.98), pitch, 96 if strong else 84))
            t += d
    return notes, cells, idx


def make_melody(style: S.Style, key: Key, chords: list[Chord], cpb: int, bars: int, program: int,
                rng: np.random.Generator) -> list[Note]:
    lo, hi = S.MELODY_RANGE
    if program in S.LOW_MELODY_PROGRAMS:
        lo, hi = lo - 12, hi - 12
    scale = key.scale_pitches(lo, hi)
    home = len(scale) // 2
    phrase = 2 if style.bpm[0] < 150 else 4  # bars per phrase
    notes: list[Note] = []
    rhythm_a: list[list[float]] | None = None
    section = 0
    for bar0 in range(0, bars, phrase):
        n = min(phrase, bars - bar0)
        form = "ABAB"[section % 4] if section % 4 != 3 else "C"
        if form == "A" and rhythm_a is not None:  # repeat the rhythm; vary the pitches (A')
            start = home + int(rng.integers(-1, 2))
            phr, _, _ = _motif(style, key, chords, cpb, bar0, n, lo, hi, start, rng, rhythm=rhythm_a[:n])
        else:
            phr, cells, _ = _motif(style, key, chords, cpb, bar0, n, lo, hi, home + int(rng.integers(-2, 3)), rng)
            if rhythm_a is None:
                rhythm_a = cells
        notes.extend(phr)
        section += 1
    return notes


# ---------------------------------------------------------------------------------- feel
def apply_feel(notes: list[Note], swing_unit: float, swing: float, timing_beats: float, vel_jitter: int,
               rng: np.random.Generator, humanize: bool) -> list[Note]:
    """Swing (delay of off-beat ``swing_unit`` positions) and humanisation (timing/velocity jitter)."""
    out = []
    for n in notes:
        start = n.start
        pos = start / swing_unit
        if swing > 0 and abs(pos - round(pos)) < 1e-6 and int(round(pos)) % 2 == 1:
            start += swing * swing_unit
        vel = n.velocity
        if humanize:
            start += float(np.clip(rng.normal(0.0, timing_beats), -2.5 * timing_beats, 2.5 * timing_beats))
            vel += int(rng.integers(-vel_jitter, vel_jitter + 1))
        out.append(Note(max(0.0, start), n.dur, n.pitch, int(np.clip(vel, 1, 127))))
    return out


# ---------------------------------------------------------------------------------- song
def arrange(seed: int, seconds: float, genre: str | None = None, held_out_program: int | None = None,
            humanize: bool = True, transpose: int = 0) -> Arrangement:
    """Build a deterministic arrangement for ``seed`` lasting at least ``seconds``.

    ``held_out_program``: put this GM program (normally kept out of training) on the melody stem.
    ``transpose``: move the key up by this many semitones (mod 12; pitched notes move by the nearer of +s and
    s - 12) and change nothing else: the same style, tempo, progression, rhythms, velocities and instruments in
    another key of the same mode.
    """
    rng = np.random.default_rng(seed)
    if genre is None:
        genre = _choice(rng, S.GENRES)
    if genre not in S.STYLES:
        raise InvalidArgument(f"unknown genre {genre!r}; known: {', '.join(S.GENRES)}")
    style = S.STYLES[genre]
    bpm = float(rng.integers(style.bpm[0], style.bpm[1] + 1))
    mode = "minor" if rng.random() < style.minor_prob else "major"
    key = Key(int(rng.integers(12)), mode)
    mood = _choice(rng, style.moods_minor if mode == "minor" else style.moods_major)
    swing = float(rng.uniform(*style.swing)) if style.swing[1] > 0 else 0.0
    cpb = 2 if (style.name in ("jazz swing", "pop ballad") and rng.random() < 0.3) else 1
    prog = list(_choice(rng, PROGRESSIONS[style.progressions][mode]))
    chords = [key.chord(d, style.chord_size) for d in prog]
    bars = int(math.ceil(seconds * bpm / 60.0 / BEATS_PER_BAR)) + 1

    kit = _choice(rng, style.kits)
    bass_prog = _choice(rng, style.bass_programs)
    comp_prog = _choice(rng, style.comp_programs)
    comp_style = _choice(rng, style.comp_styles)
    mel_choices = [p for p in style.melody_programs if p != comp_prog]
    mel_prog = _choice(rng, mel_choices)
    if held_out_program is not None:
        if held_out_program not in HELD_OUT_PROGRAMS:
            raise InvalidArgument(f"program {GM_PROGRAMS[held_out_program]!r} is not a held-out program")
        mel_prog = held_out_program
    assert not {bass_prog, comp_prog} & set(HELD_OUT_PROGRAMS)

    parts = {
        "bass": Part("bass", bass_prog, 0, make_bass(style, key, chords, cpb, bars, rng), style.bass_style),
        "drums": Part("drums", kit, DRUM_CHANNEL, make_drums(style, bars, rng), "drums"),
        "instrument": Part("instrument", comp_prog, 1,
                           make_comp(style, key, chords, cpb, bars, comp_style, rng), comp_style),
        "melody": Part("melody", mel_prog, 2, make_melody(style, key, chords, cpb, bars, mel_prog, rng), "melody"),
    }
    beat_s = 60.0 / bpm
    for stem, part in parts.items():
        ms = style.drum_timing_ms if stem == "drums" else style.timing_ms
        part.notes = apply_feel(part.notes, style.swing_unit, swing, ms / 1000.0 / beat_s, style.velocity_jitter,
                                rng, humanize)
        limit = seconds / beat_s
        part.notes = [n for n in part.notes if n.start < limit]
    shift = int(transpose) % 12
    if shift:  # after every random draw, so the draws (and all timing) are those of the untransposed song
        shift = shift - 12 if shift > 6 else shift  # the nearer direction keeps each part in its register
        for stem, part in parts.items():
            if stem != "drums":
                part.notes = [Note(n.start, n.dur, n.pitch + shift, n.velocity) for n in part.notes]
        key = Key((key.tonic + shift) % 12, mode)
    return Arrangement(genre, bpm, key, mood, bars, seconds, swing, parts, prog, cpb, held_out_program)
