"""Natural-language captions built from an item's metadata, with varied templates."""

from __future__ import annotations

import numpy as np

from engine.data.studio.theory import DRUM_KITS, GM_PROGRAMS

# short phrases for the instruments the studio uses (others fall back to the lower-cased GM name)
_INSTRUMENT_WORDS = {
    0: "piano", 1: "bright piano", 4: "Rhodes electric piano", 5: "electric piano", 7: "clavinet",
    10: "music box", 11: "vibraphone", 12: "marimba", 16: "drawbar organ", 17: "percussive organ",
    18: "rock organ", 22: "harmonica", 24: "nylon-string guitar", 25: "acoustic guitar", 26: "jazz guitar",
    27: "clean electric guitar", 28: "muted guitar", 29: "overdriven guitar", 30: "distorted guitar",
    32: "upright bass", 33: "fingered electric bass", 34: "picked bass", 35: "fretless bass", 36: "slap bass",
    37: "slap bass", 38: "synth bass", 39: "analog synth bass", 40: "violin", 48: "string ensemble",
    50: "synth strings", 52: "choir", 54: "synth voice", 56: "trumpet", 57: "trombone", 59: "muted trumpet",
    61: "brass section", 65: "alto sax", 66: "tenor sax", 68: "oboe", 71: "clarinet", 73: "flute",
    80: "square-wave lead synth", 81: "sawtooth lead synth", 84: "charang lead", 87: "bass-and-lead synth",
    88: "new age pad", 89: "warm pad", 90: "polysynth", 94: "halo pad", 95: "sweep pad",
    79: "ocarina", 104: "sitar", 105: "banjo", 106: "shamisen", 107: "koto", 108: "kalimba", 109: "bagpipe",
    114: "steel drums",
}
_KIT_WORDS = {
    0: ("a tight drum kit", "an acoustic drum kit", "live drums"), 8: ("a roomy drum kit", "roomy live drums"),
    16: ("a punchy rock kit", "big, punchy drums"), 24: ("electronic drums", "a drum machine"),
    25: ("808 drums", "a TR-808 beat"), 32: ("a jazz kit", "a light jazz kit"), 40: ("brushed drums", "brushes"),
}
_COMP_WORDS = {
    "pad": ("{i} pads", "sustained {i} chords", "a bed of {i}"),
    "stabs": ("{i} stabs", "{i} comping", "choppy {i} chords"),
    "skank": ("{i} skanks on the offbeat", "offbeat {i} chops"),
    "jazz": ("{i} comping", "{i} chords"),
    "strum": ("strummed {i}", "driving {i} chords"),
    "broken": ("arpeggiated {i}", "flowing {i} arpeggios"),
    "arp": ("{i} arpeggios", "an arpeggiated {i}"),
    "block": ("{i} chords", "steady {i} chords"),
}
_BASS_WORDS = {
    "walking": "a walking {i}", "funk": "a syncopated {i} line", "house": "an offbeat {i}",
    "rolling": "a rolling {i}", "dnb": "a deep {i}", "reggae": "a round {i}",
}
_TEMPLATES = (
    "{A_mood} {genre} {groove} at {bpm} BPM in {key} with {bass}, {drums}, {comp} and {melody}.",
    "{Mood} {genre} in {key}, {bpm} BPM: {drums}, {bass}, {comp}, and {melody} on top.",
    "{A_genre_cap} track at {bpm} bpm in {key} with {a_mood} feel, featuring {melody} over {comp}, {bass} and {drums}.",
    "{Melody} takes the lead in this {mood} {genre} {groove} ({bpm} BPM, {key}), "
    "backed by {comp}, {bass} and {drums}.",
    "{Mood} {genre} at {bpm} BPM, key of {key}. {Drums} and {bass} hold the groove while {comp} and {melody} "
    "carry the harmony and tune.",
)
_GENRE_WORDS = {"jazz swing": "swing jazz"}
_GROOVES = {"swing jazz": ("tune", "number"), "pop ballad": ("song", "piece"), "lo-fi": ("beat", "loop"),
            "hip hop": ("beat", "instrumental"), "house": ("track", "groove"), "techno": ("track", "loop")}


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def instrument_word(program: int) -> str:
    return _INSTRUMENT_WORDS.get(program, GM_PROGRAMS[program].lower())


def build_caption(meta: dict, rng: np.random.Generator) -> str:
    """Caption from metadata keys genre, bpm, key, mode, mood, programs, roles."""
    programs = meta["programs"]
    roles = meta.get("roles", {})
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    inst = instrument_word(programs["instrument"])
    bass_word = instrument_word(programs["bass"])
    bass = _BASS_WORDS.get(roles.get("bass", ""), "{i}").format(i=bass_word)
    if not bass.startswith(("a ", "an ")):
        bass = bass_word if bass_word.endswith("bass") and rng.random() < 0.5 else _article(bass_word)
    melody_word = instrument_word(programs["melody"])
    melody_forms = [f"{_article(melody_word)} melody", f"{_article(melody_word)} line"]
    if not melody_word.endswith(("lead", "synth")):
        melody_forms.append(f"{_article(melody_word)} lead")
    melody = pick(tuple(melody_forms))
    comp_forms = _COMP_WORDS.get(roles.get("instrument", ""), ("{i}",))
    if inst.endswith(("pad", "strings", "ensemble")):
        comp_forms = tuple(f.replace("{i} pads", "{i} chords") for f in comp_forms)
    comp = pick(comp_forms).format(i=inst)
    drums = pick(_KIT_WORDS.get(programs["drums"], (f"{DRUM_KITS.get(programs['drums'], 'standard')} drums",)))
    genre = _GENRE_WORDS.get(meta["genre"], meta["genre"])
    key = f"{meta['key']} {meta['mode']}"
    mood = meta["mood"]
    fields = {
        "genre": genre, "bpm": int(round(meta["bpm"])), "key": key, "mood": mood, "Mood": _cap(mood),
        "A_mood": _cap(_article(mood)), "a_mood": _article(mood), "A_genre_cap": _cap(_article(genre)),
        "bass": bass, "drums": drums,
        "Drums": _cap(drums), "comp": comp, "melody": melody, "Melody": _cap(melody),
        "groove": pick(_GROOVES.get(genre, ("groove", "track", "jam"))),
    }
    return pick(_TEMPLATES).format(**fields)
