"""Genre definitions for the synthetic studio: tempo ranges, feel, drum patterns, instrument pools.

Drum patterns are strings over a 16-step (sixteenth-note) bar in 4/4: ``x`` accent, ``o`` normal,
``g`` ghost note, ``.`` rest. Notes are General MIDI percussion keys (played on MIDI channel 10).
Programs are 0-based GM program numbers; the held-out programs of ``theory.HELD_OUT_PROGRAMS``
never appear here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# GM percussion keys
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, RIDE_BELL, TAMBOURINE, SHAKER = 45, 47, 50, 49, 51, 53, 54, 70

DrumPattern = dict[int, str]  # GM key -> 16-step string (or 32 steps for two-bar patterns)


@dataclass(frozen=True)
class Style:
    name: str  # genre as written in metadata and captions
    bpm: tuple[int, int]
    swing_unit: float  # 0.5 (eighth swing) or 0.25 (sixteenth swing), in beats
    swing: tuple[float, float]  # swing amount range: fraction of the unit an off-beat is delayed (1/3 = triplet)
    progressions: str  # key into theory.PROGRESSIONS
    minor_prob: float
    chord_size: int  # 3 triads, 4 sevenths
    kits: tuple[int, ...]
    drums: tuple[DrumPattern, ...]
    bass_programs: tuple[int, ...]
    bass_style: str
    comp_programs: tuple[int, ...]
    comp_styles: tuple[str, ...]
    melody_programs: tuple[int, ...]
    melody_cells: tuple[tuple[float, ...], ...]  # one bar of durations in beats; negative = rest
    moods_major: tuple[str, ...]
    moods_minor: tuple[str, ...]
    timing_ms: float = 6.0  # humanisation: timing jitter (std, ms) of pitched parts
    drum_timing_ms: float = 3.0
    velocity_jitter: int = 8
    fill_prob: float = 0.5
    extra: dict[str, str] = field(default_factory=dict)


_STRAIGHT_CELLS = (
    (1.0, 1.0, 1.0, 1.0), (0.5, 0.5, 1.0, 2.0), (1.5, 0.5, 1.0, 1.0), (1.0, 0.5, 0.5, 2.0),
    (2.0, 1.0, 1.0), (0.5, 0.5, 0.5, 0.5, 2.0), (-1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 2.0),
)
_SYNCOPATED_CELLS = (
    (0.75, 0.75, 0.5, 2.0), (-0.5, 0.5, 0.5, 0.5, 1.0, 1.0), (0.5, 1.0, 0.5, 2.0),
    (0.5, 0.25, 0.25, 0.5, 0.5, 2.0), (1.5, 1.5, 1.0), (-0.5, 1.0, 0.5, 2.0), (0.75, 0.25, 1.0, 2.0),
)
_SLOW_CELLS = ((2.0, 2.0), (3.0, 1.0), (1.0, 1.0, 2.0), (4.0,), (1.5, 0.5, 2.0), (-1.0, 1.0, 2.0))

MAJOR_MOODS = ("upbeat", "happy", "uplifting", "bright", "playful", "warm", "confident")
MINOR_MOODS = ("dark", "melancholic", "moody", "tense", "mysterious", "brooding", "gritty")

STYLES: dict[str, Style] = {
    "rock": Style(
        "rock", (100, 140), 0.25, (0.0, 0.0), "rock", 0.45, 3, (0, 16, 8),
        (
            {KICK: "x.......x.x.....", SNARE: "....x.......x...", CLOSED_HAT: "x.o.x.o.x.o.x.o."},
            {KICK: "x.....x.x.......", SNARE: "....x.......x...", CLOSED_HAT: "x.o.x.o.x.o.x.o."},
            {KICK: "x.......x.......", SNARE: "....x.......x..g", RIDE: "x.o.x.o.x.o.x.o."},
        ),
        (33, 34), "eighths", (29, 30, 27, 18), ("strum", "strum", "pad"), (29, 81, 65, 56),
        _STRAIGHT_CELLS, ("energetic", "driving", "anthemic", "upbeat"), ("gritty", "dark", "driving", "tense"),
    ),
    "funk": Style(
        "funk", (90, 115), 0.25, (0.0, 0.12), "funk", 0.6, 4, (0, 8),
        (
            {KICK: "x.........x..x..", SNARE: "....x..g.g..x..g",
             CLOSED_HAT: "xoooxoooxoooxo.o", OPEN_HAT: "..............x."},
            {KICK: "x..x..x...x.....", SNARE: "....x.g.....x.g.", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
            {KICK: "x.x.......x..x..", SNARE: "....x..g.g.gx...", CLOSED_HAT: "xoooxoooxoooxooo"},
        ),
        (36, 37, 33), "funk", (7, 27, 4, 28), ("stabs",), (61, 56, 66, 80),
        _SYNCOPATED_CELLS, ("upbeat", "groovy", "playful", "funky"), ("gritty", "groovy", "moody", "tense"),
        timing_ms=5.0, fill_prob=0.4,
    ),
    "hip hop": Style(
        "hip hop", (82, 98), 0.25, (0.08, 0.2), "lofi", 0.7, 4, (25, 0),
        (
            {KICK: "x......x..x.....", SNARE: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "x.....x...x..x..", SNARE: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.oo"},
            {KICK: "x..x......x.....", CLAP: "....x.......x...", CLOSED_HAT: "ooooooooooooxoxo"},
        ),
        (38, 39, 33), "hiphop", (4, 0, 48, 89), ("pad", "block"), (11, 73, 80, 54),
        _SYNCOPATED_CELLS, ("confident", "laid-back", "smooth", "warm"), ("dark", "moody", "gritty", "brooding"),
        timing_ms=8.0, fill_prob=0.2,
    ),
    "house": Style(
        "house", (118, 128), 0.25, (0.0, 0.08), "edm", 0.5, 4, (25, 24),
        (
            {KICK: "x...x...x...x...", CLAP: "....x.......x...",
             OPEN_HAT: "..o...o...o...o.", CLOSED_HAT: "g.g.g.g.g.g.g.g."},
            {KICK: "x...x...x...x...", CLAP: "....x.......x...",
             OPEN_HAT: "..x...x...x...x.", SHAKER: "oooooooooooooooo"},
        ),
        (38, 39), "house", (0, 90, 89, 4), ("stabs", "pad"), (80, 81, 54, 11),
        _SYNCOPATED_CELLS, ("uplifting", "euphoric", "upbeat", "happy"), ("hypnotic", "moody", "dark", "driving"),
        timing_ms=2.0, drum_timing_ms=1.0, velocity_jitter=5, fill_prob=0.15,
    ),
    "techno": Style(
        "techno", (124, 135), 0.25, (0.0, 0.0), "edm", 0.85, 3, (24, 25),
        (
            {KICK: "x...x...x...x...", CLOSED_HAT: "oxooxoxooxoooxoo",
             OPEN_HAT: "..x...x...x...x.", CLAP: "....x.......x..."},
            {KICK: "x...x...x...x...", RIDE: "..o...o...o...o.", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
        ),
        (38, 39), "rolling", (90, 95, 50, 88), ("arp", "pad"), (80, 81, 87, 84),
        _STRAIGHT_CELLS, ("driving", "hypnotic", "euphoric"), ("dark", "hypnotic", "driving", "tense", "industrial"),
        timing_ms=1.0, drum_timing_ms=0.5, velocity_jitter=4, fill_prob=0.1,
    ),
    "jazz swing": Style(
        "jazz swing", (110, 180), 0.5, (0.25, 0.33), "jazz", 0.35, 4, (32, 40),
        (
            {RIDE: "o...x.o.o...x.o.", PEDAL_HAT: "....x.......x...", KICK: "g...g...g...g..."},
            {RIDE: "o...x.o.o.o.x.o.", PEDAL_HAT: "....x.......x...", SNARE: "......g.......g."},
        ),
        (32,), "walking", (0, 26, 4, 11), ("jazz",), (65, 66, 56, 59, 71),
        _STRAIGHT_CELLS + _SYNCOPATED_CELLS[:3], ("swinging", "sophisticated", "relaxed", "warm"),
        ("smoky", "melancholic", "mysterious", "late-night"), timing_ms=9.0, drum_timing_ms=5.0, velocity_jitter=12,
        fill_prob=0.3,
    ),
    "reggae": Style(
        "reggae", (70, 90), 0.25, (0.05, 0.15), "reggae", 0.4, 3, (0, 8),
        (
            {KICK: "........x.......", SIDE_STICK: "........x.......", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "........x.......", SNARE: "........x.......", CLOSED_HAT: "o.oxo.oxo.oxo.ox"},
        ),
        (33, 32, 38), "reggae", (27, 16, 17, 0), ("skank",), (56, 22, 73, 57),
        _STRAIGHT_CELLS, ("laid-back", "sunny", "relaxed", "positive"), ("moody", "rootsy", "melancholic", "dark"),
        timing_ms=7.0, fill_prob=0.3,
    ),
    "pop ballad": Style(
        "pop ballad", (62, 82), 0.5, (0.0, 0.0), "pop", 0.4, 3, (0, 40, 8),
        (
            {KICK: "x.......x.x.....", SNARE: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "x......xx.......", SIDE_STICK: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
        ),
        (33, 35, 32), "ballad", (0, 48, 24, 25, 4), ("broken", "pad", "block"), (40, 73, 68, 71, 65, 52),
        _SLOW_CELLS + _STRAIGHT_CELLS[:4], ("tender", "romantic", "hopeful", "warm", "emotional"),
        ("melancholic", "sad", "bittersweet", "emotional", "wistful"), timing_ms=9.0, velocity_jitter=10, fill_prob=0.4,
    ),
    "pop": Style(
        "pop", (100, 124), 0.25, (0.0, 0.0), "pop", 0.35, 3, (0, 24),
        (
            {KICK: "x.....x.x.......", CLAP: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "x...x...x...x...", SNARE: "....x.......x...",
             CLOSED_HAT: "oooooooooooooooo", TAMBOURINE: "....o.......o..."},
        ),
        (33, 38, 34), "eighths", (0, 27, 90, 25), ("arp", "strum", "block"), (80, 81, 54, 73, 11),
        _STRAIGHT_CELLS + _SYNCOPATED_CELLS[:4], ("upbeat", "happy", "catchy", "bright", "uplifting"),
        ("moody", "bittersweet", "dramatic", "dark"), timing_ms=4.0,
    ),
    "drum and bass": Style(
        "drum and bass", (168, 176), 0.25, (0.0, 0.0), "edm", 0.8, 3, (0, 24),
        (
            {KICK: "x.........x.....", SNARE: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "x.x.......x.....", SNARE: "....x..g.g..x...", RIDE: "o.o.o.o.o.o.o.o."},
            {KICK: "x.........xx....", SNARE: "....x.......x..g", CLOSED_HAT: "o.ooo.oo.ooo.o.o"},
        ),
        (38, 39), "dnb", (89, 94, 50, 4), ("pad", "arp"), (81, 80, 54, 73),
        _SLOW_CELLS, ("energetic", "euphoric", "uplifting", "driving"), ("dark", "tense", "driving", "menacing"),
        timing_ms=2.0, drum_timing_ms=1.5, fill_prob=0.3,
    ),
    "lo-fi": Style(
        "lo-fi", (70, 90), 0.25, (0.12, 0.25), "lofi", 0.5, 4, (32, 40, 25),
        (
            {KICK: "x......x..x.....", SNARE: "....x.......x...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
            {KICK: "x.........x..x..", SIDE_STICK: "....x.......x...", CLOSED_HAT: "o.ooo.ooo.ooo.oo"},
        ),
        (33, 32, 35), "lofi", (4, 5, 0, 26), ("pad", "block"), (11, 73, 26, 12, 10),
        _SYNCOPATED_CELLS + _SLOW_CELLS[:3], ("chill", "relaxed", "dreamy", "cozy", "nostalgic"),
        ("melancholic", "chill", "nostalgic", "wistful", "rainy"), timing_ms=12.0, drum_timing_ms=7.0,
        velocity_jitter=12, fill_prob=0.15,
    ),
}

GENRES: tuple[str, ...] = tuple(STYLES)

# Pitch ranges (MIDI) for each part.
BASS_RANGE = (28, 52)
COMP_RANGE = (50, 77)
MELODY_RANGE = (60, 86)
# Melody programs that sound better an octave lower.
LOW_MELODY_PROGRAMS = {57, 58, 66, 67, 26, 29, 87}
