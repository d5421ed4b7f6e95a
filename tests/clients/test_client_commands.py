"""``stemforge client`` argument handling: regions, STEM=TAKE pairs, option placement, help."""

from __future__ import annotations

import pytest

from clients.python.commands import _generation_fields, _pairs, parse_region
from daw_bridge.cli import build_parser
from protocol import messages as m
from protocol.errors import InvalidArgument
from protocol.records import Region
from protocol.region import resolve_region


def test_regions_in_every_unit_resolve_to_samples() -> None:
    assert parse_region(None, "seconds") is None
    seconds = parse_region("1.5:2", "seconds")
    assert resolve_region(Region(**seconds), total_samples=None, bpm=120, time_signature=(4, 4)) == (72_000, 96_000)
    bars = parse_region("2.3:3", "bars")  # bar 2 beat 3 up to bar 3 (DAW notation)
    assert bars == {"unit": "bars", "start": 2.0, "end": 3.0, "start_beat": 3.0, "end_beat": 1.0}
    assert resolve_region(Region(**bars), total_samples=None, bpm=120, time_signature=(4, 4)) == (144_000, 192_000)
    for bad, unit in (("1-2", "seconds"), ("a:b", "seconds"), ("1.x:2", "bars")):
        with pytest.raises(InvalidArgument):
            parse_region(bad, unit)


def test_stem_take_pairs() -> None:
    assert _pairs(None, "keep") is None
    assert _pairs(["bass=t-1", "drums=t-2"], "keep") == {"bass": "t-1", "drums": "t-2"}
    with pytest.raises(InvalidArgument, match="STEM=TAKE_ID"):
        _pairs(["bass"], "keep")


def test_connection_options_work_before_and_after_the_subcommand() -> None:
    parser = build_parser()
    a = parser.parse_args(["client", "--port", "9001", "--token", "t", "ping", "-c", "3"])
    assert (a.port, a.token, a.count, a.host) == (9001, "t", 3, "127.0.0.1")
    b = parser.parse_args(["client", "generate", "funk", "--port", "9002", "--unit", "bars", "--region", "1:3",
                           "--keep", "drums=t-9", "--steps", "2"])
    assert (b.port, b.prompt, b.region, b.keep, b.steps) == (9002, "funk", "1:3", ["drums=t-9"], 2)
    c = parser.parse_args(["client", "generate", "funk", "--chords", "Am F C G", "--chord-beats", "2",
                           "--chord-cfg", "6", "--chroma-guidance", "0.5"])
    fields = _generation_fields(c)
    assert fields["chords"] == "Am F C G" and fields["chord_beats"] == 2.0 and fields["chord_cfg"] == 6.0
    assert fields["chroma_guidance"] == 0.5
    m.Generate(**fields)  # the fields the client sends are a valid request
    assert "chords" not in _generation_fields(parser.parse_args(["client", "generate", "funk"]))
    for argv in (["client", "session", "create"], ["client", "audition", "stop"], ["client", "jobs", "list"],
                 ["client", "inpaint", "x", "--stems", "bass", "--region", "0:1"], ["bench", "bridge"]):
        assert callable(parser.parse_args(argv).func)
