"""MIDI files (mido) for the parts of an arrangement, and reading their notes back."""

from __future__ import annotations

from pathlib import Path

import mido

from engine.data.studio.arrange import Note, Part

TICKS_PER_BEAT = 480


def part_to_midi(part: Part, bpm: float, end_beats: float) -> mido.MidiFile:
    """One-track MIDI file: tempo, program change, the part's notes; the track ends at ``end_beats``.

    The end marker keeps a renderer running past the last note so that tails are rendered and
    every stem can be trimmed to the same exact length.
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    if part.channel == 9:
        track.append(mido.Message("control_change", channel=9, control=0, value=1, time=0))  # bank MSB (drums)
    track.append(mido.Message("program_change", channel=part.channel, program=part.program, time=0))
    track.append(mido.Message("control_change", channel=part.channel, control=7, value=100, time=0))
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); note-offs before note-ons
    next_on: dict[int, int] = {}  # pitch -> tick of the following note-on of that pitch (no overlaps)
    for n in sorted(part.notes, key=lambda n: n.start, reverse=True):
        on = int(round(n.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((n.start + n.dur) * TICKS_PER_BEAT)))
        if n.pitch in next_on:
            off = max(on + 1, min(off, next_on[n.pitch]))
        next_on[n.pitch] = on
        events.append((on, 1, mido.Message("note_on", channel=part.channel, note=n.pitch, velocity=n.velocity)))
        events.append((off, 0, mido.Message("note_off", channel=part.channel, note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end_tick = max(now, int(round(end_beats * TICKS_PER_BEAT)))
    track.append(mido.MetaMessage("end_of_track", time=end_tick - now))
    return mid


def write_part(path: str | Path, part: Part, bpm: float, end_beats: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part_to_midi(part, bpm, end_beats).save(str(path))
    return path


def read_notes(path: str | Path) -> tuple[list[Note], list[int], float]:
    """Read a single-tempo MIDI file back: (notes in beats, channels used, bpm)."""
    mid = mido.MidiFile(str(path))
    tpb = mid.ticks_per_beat
    bpm = 120.0
    notes: list[Note] = []
    channels: set[int] = set()
    for track in mid.tracks:
        tick = 0
        open_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                bpm = mido.tempo2bpm(msg.tempo)
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes[(msg.channel, msg.note)] = (tick, msg.velocity)
                channels.add(msg.channel)
            elif msg.type in ("note_off", "note_on"):
                start = open_notes.pop((msg.channel, msg.note), None)
                if start is not None:
                    notes.append(Note(start[0] / tpb, (tick - start[0]) / tpb, msg.note, start[1]))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes, sorted(channels), bpm
