"""Music theory for the synthetic studio: pitch names, scales, diatonic chords, GM programs.

Pure Python; no audio. Pitches are MIDI note numbers, pitch classes are 0..11 (C = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import InvalidArgument

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ALIASES = {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "Fb": 4, "E#": 5, "B#": 0}

MODES = ("major", "minor")
SCALE_STEPS = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor (aeolian): every chord stays diatonic
}


def pitch_class(name: str) -> int:
    """'E' -> 4, 'Bb' -> 10, 'f#' -> 6."""
    key = name.strip()
    key = key[:1].upper() + key[1:].lower() if key else key
    if key in NOTE_NAMES:
        return NOTE_NAMES.index(key)
    if key in _ALIASES:
        return _ALIASES[key]
    raise InvalidArgument(f"unknown note name {name!r}; use one of {', '.join(NOTE_NAMES)}")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str  # "major" | "minor"

    def __post_init__(self) -> None:
        if self.mode not in SCALE_STEPS:
            raise InvalidArgument(f"unknown mode {self.mode!r}; use major or minor")
        if not 0 <= self.tonic < 12:
            raise InvalidArgument(f"tonic must be a pitch class 0..11, got {self.tonic}")

    @property
    def name(self) -> str:
        return NOTE_NAMES[self.tonic]

    def __str__(self) -> str:
        return f"{self.name} {self.mode}"

    @property
    def scale_pcs(self) -> tuple[int, ...]:
        return tuple((self.tonic + s) % 12 for s in SCALE_STEPS[self.mode])

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.scale_pcs

    def degree_pc(self, degree: int) -> int:
        """Pitch class of scale degree ``degree`` (0-based, any integer; wraps by octave)."""
        steps = SCALE_STEPS[self.mode]
        return (self.tonic + steps[degree % 7]) % 12

    def scale_pitches(self, low: int, high: int) -> list[int]:
        """All scale pitches in [low, high], ascending."""
        return [p for p in range(low, high + 1) if self.contains(p)]

    def chord(self, degree: int, size: int = 3) -> "Chord":
        """Diatonic chord stacked in thirds on scale degree ``degree`` (0 = tonic)."""
        pcs = tuple(self.degree_pc(degree + 2 * i) for i in range(size))
        return Chord(root=pcs[0], pcs=pcs, degree=degree % 7)


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class
    pcs: tuple[int, ...]  # chord tones as pitch classes, root first
    degree: int  # scale degree 0..6

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.pcs

    def voicing(self, low: int, high: int) -> list[int]:
        """Chord tones in [low, high], ascending."""
        return [p for p in range(low, high + 1) if p % 12 in self.pcs]


def nearest_pitch(pc: int, target: int) -> int:
    """The pitch with pitch class ``pc`` closest to ``target`` (ties go down)."""
    base = target - ((target - pc) % 12)
    return base if target - base <= base + 12 - target else base + 12


# Diatonic progressions as 0-based scale degrees, one chord per entry.
PROGRESSIONS: dict[str, dict[str, list[tuple[int, ...]]]] = {
    "pop": {
        "major": [(0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 5, 4), (3, 0, 4, 5)],
        "minor": [(0, 5, 2, 6), (0, 3, 5, 4), (0, 6, 5, 6), (5, 6, 0, 0)],
    },
    "rock": {
        "major": [(0, 3, 4, 3), (0, 6, 3, 0), (0, 4, 5, 3), (0, 3, 0, 4)],
        "minor": [(0, 6, 5, 6), (0, 5, 6, 0), (0, 3, 6, 0), (0, 2, 6, 3)],
    },
    "funk": {
        "major": [(1, 4), (0, 3), (0, 0, 3, 3), (1, 1, 4, 4)],
        "minor": [(0, 3), (0, 0, 3, 3), (0, 6), (0, 6, 5, 6)],
    },
    "jazz": {
        "major": [(1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 1, 4)],
        "minor": [(1, 4, 0, 0), (0, 3, 1, 4), (0, 5, 1, 4), (3, 6, 2, 5)],
    },
    "reggae": {
        "major": [(0, 3), (0, 4), (0, 3, 4, 3), (1, 4)],
        "minor": [(0, 3), (0, 6), (0, 3, 6, 3), (0, 5, 6, 0)],
    },
    "edm": {
        "major": [(5, 3, 0, 4), (0, 4, 5, 3), (3, 4, 5, 5)],
        "minor": [(0, 5, 2, 6), (0, 6, 5, 6), (0, 3, 5, 6), (0, 0, 5, 6)],
    },
    "lofi": {
        "major": [(1, 4, 0, 5), (3, 2, 1, 0), (0, 5, 1, 4), (3, 4, 2, 5)],
        "minor": [(0, 3, 6, 2), (3, 6, 0, 0), (0, 5, 3, 4), (1, 4, 0, 5)],
    },
}

# General MIDI program names (0-based program numbers), for metadata and lookup by name.
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs", "Synth Voice",
    "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section",
    "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe",
    "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle",
    "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)",
    "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)", "FX 1 (rain)", "FX 2 (soundtrack)",
    "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)",
    "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum",
    "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring",
    "Helicopter", "Applause", "Gunshot",
)
assert len(GM_PROGRAMS) == 128

# Drum kits of the GM soundfont (bank 128 presets), selected by a program change on channel 10.
DRUM_KITS = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808", 32: "Jazz", 40: "Brush"}

#: Programs kept OUT of the default model's training data, for the concept evaluation (issue 5).
#: The studio never samples them unless asked (``--with-program``).
HELD_OUT_PROGRAMS: tuple[int, ...] = (
    108,  # Kalimba
    114,  # Steel Drums
    104,  # Sitar
    109,  # Bagpipe
    106,  # Shamisen
    79,  # Ocarina
    107,  # Koto
    105,  # Banjo
)


def program_number(name_or_number: str | int) -> int:
    """Resolve a GM program by 0-based number or by (case-insensitive, prefix-tolerant) name."""
    if isinstance(name_or_number, int) or str(name_or_number).strip().isdigit():
        num = int(name_or_number)
        if not 0 <= num < 128:
            raise InvalidArgument(f"GM program number must be 0..127, got {num}")
        return num
    wanted = str(name_or_number).strip().lower().replace("_", " ")
    for i, name in enumerate(GM_PROGRAMS):
        if name.lower() == wanted:
            return i
    matches = [i for i, name in enumerate(GM_PROGRAMS) if name.lower().startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    raise InvalidArgument(
        f"unknown GM program {name_or_number!r}"
        + (f" (ambiguous: {[GM_PROGRAMS[i] for i in matches]})" if matches else "")
    )


def held_out_program_names() -> list[str]:
    return [GM_PROGRAMS[p] for p in HELD_OUT_PROGRAMS]
