"""JSON codec: round trips of every message type, literal wire text, and every bad-input class."""

from __future__ import annotations

import json

import pytest

from protocol import codec
from protocol import messages as m
from protocol.errors import (
    InvalidArgument,
    MalformedMessage,
    MessageTooLarge,
    UnknownMessageType,
    UnsupportedVersion,
)
from protocol.examples import EXAMPLES


def test_every_message_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(m.MESSAGE_TYPES)
    assert set(m.REPLIES) == set(m.REQUESTS)
    for replies in m.REPLIES.values():
        assert set(replies) <= set(m.EVENTS)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_round_trip(kind: str) -> None:
    msg = EXAMPLES[kind]
    text = codec.encode(msg)
    data = json.loads(text)
    assert data["v"] == 1 and data["type"] == kind
    back = codec.decode(text)
    assert type(back) is type(msg)
    assert back == msg
    assert codec.encode(back) == text
    # the direction-specific decoders accept only their own side
    if msg.KIND == "request":
        assert codec.decode_request(text) == msg
        with pytest.raises(UnknownMessageType):
            codec.decode_event(text)
    else:
        assert codec.decode_event(text) == msg
        with pytest.raises(UnknownMessageType):
            codec.decode_request(text)


def test_literal_ping_and_pong() -> None:
    msg = codec.decode('{"v": 1, "type": "ping"}')
    assert msg == m.Ping() and msg.id is None
    assert json.loads(codec.encode(m.Pong()))["type"] == "pong"
    assert codec.decode(b'{"v":1,"type":"ping","id":"x1"}') == m.Ping(id="x1")
    assert codec.encode(m.Pong(id="x1")) == '{"v":1,"type":"pong","id":"x1","protocol":1}'


def test_literal_generate() -> None:
    text = ('{"v":1,"type":"generate","id":7,"session_id":"s-1","prompt":"lo-fi <kalimba-ish>",'
            '"stems":["bass","melody"],"keep":{"drums":"t-1"},'
            '"region":{"unit":"bars","start":2,"end":4},"seed":42,"steps":20,"cfg":3,"format":"float32"}')
    msg = codec.decode(text)
    assert msg == m.Generate(id=7, session_id="s-1", prompt="lo-fi <kalimba-ish>", stems=("bass", "melody"),
                             keep={"drums": "t-1"}, region=m.Region(unit="bars", start=2.0, end=4.0), seed=42,
                             steps=20, cfg=3.0, format="float32")
    assert isinstance(msg.cfg, float) and msg.region.start_beat is None
    assert msg.stems == ("bass", "melody")  # arrays become tuples


def test_chords_travel_with_generation_requests() -> None:
    msg = codec.decode('{"v":1,"type":"generate","chords":"Am F C G","chord_beats":2,"chord_cfg":6,'
                       '"chroma_guidance":0.5}')
    assert msg.chords == "Am F C G" and msg.chord_beats == 2.0 and msg.chord_cfg == 6.0
    assert msg.chroma_guidance == 0.5
    assert codec.decode(codec.encode(msg)) == msg


def test_none_fields_are_omitted_and_defaults_apply() -> None:
    data = json.loads(codec.encode(m.Generate(prompt="x")))
    assert data == {"v": 1, "type": "generate", "prompt": "x", "negative_prompt": "", "format": "pcm24", "stems": []}
    msg = codec.decode('{"v":1,"type":"generate"}')
    assert msg.session_id is None and msg.keep is None and msg.region is None and msg.seed is None


@pytest.mark.parametrize("text", [
    "{", "", "not json", "[1, 2]", '"ping"', "null", '{"v":1,"type":"ping"} x',
    '{"v":1,"type":"generate","cfg":NaN}', '{"v":1,"type":"generate","cfg":Infinity}',
])
def test_malformed(text: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        codec.decode(text)
    assert info.value.code == "malformed_message"


def test_malformed_utf8_bytes() -> None:
    with pytest.raises(MalformedMessage, match="UTF-8"):
        codec.decode(b'{"v":1,"type":"ping","id":"\xff"}')


@pytest.mark.parametrize("text", [
    '{"type":"ping"}', '{"v":2,"type":"ping"}', '{"v":0,"type":"ping"}', '{"v":"1","type":"ping"}',
    '{"v":1.0,"type":"ping"}', '{"v":true,"type":"ping"}', '{"v":null,"type":"ping"}',
])
def test_unsupported_version(text: str) -> None:
    with pytest.raises(UnsupportedVersion) as info:
        codec.decode(text)
    assert info.value.code == "unsupported_version"


@pytest.mark.parametrize("text", ['{"v":1}', '{"v":1,"type":"pingg"}', '{"v":1,"type":3}', '{"v":1,"type":""}',
                                  '{"v":1,"type":"Ping"}'])
def test_unknown_type(text: str) -> None:
    with pytest.raises(UnknownMessageType) as info:
        codec.decode(text)
    assert info.value.code == "unknown_message_type"


@pytest.mark.parametrize(("body", "field"), [
    ('"type":"generate","steps":"50"', "generate.steps"),
    ('"type":"generate","steps":50.0', "generate.steps"),
    ('"type":"generate","steps":true', "generate.steps"),
    ('"type":"generate","steps":0', "generate.steps"),
    ('"type":"generate","steps":1001', "generate.steps"),
    ('"type":"generate","seed":-1', "generate.seed"),
    ('"type":"generate","cfg":"high"', "generate.cfg"),
    ('"type":"generate","cfg":-1', "generate.cfg"),
    ('"type":"generate","prompt":5', "generate.prompt"),
    ('"type":"generate","stems":"bass"', "generate.stems"),
    ('"type":"generate","stems":["bass",3]', "generate.stems[1]"),
    ('"type":"generate","stems":["bass","bass"]', "generate.stems"),
    ('"type":"generate","stems":["bass"],"keep":{"bass":"t-1"}', "generate.keep"),
    ('"type":"generate","keep":{"drums":1}', "generate.keep.drums"),
    ('"type":"generate","format":"mp3"', "generate.format"),
    ('"type":"generate","region":[0,1]', "generate.region"),
    ('"type":"generate","region":{"start":0}', "generate.region.end"),
    ('"type":"generate","region":{"unit":"ticks","start":0,"end":1}', "generate.region.unit"),
    ('"type":"generate","region":{"start":0,"end":1,"bogus":1}', "generate.region.bogus"),
    ('"type":"generate","bpm":0', "generate.bpm"),
    ('"type":"generate","chords":7', "generate.chords"),
    ('"type":"generate","chords":"Am\\u0000F"', "generate.chords"),
    ('"type":"generate","chords":"' + "C " * 300 + '"', "generate.chords"),
    ('"type":"generate","chord_beats":0', "generate.chord_beats"),
    ('"type":"generate","chord_cfg":-1', "generate.chord_cfg"),
    ('"type":"continue","seconds":2,"chord_cfg":101', "continue.chord_cfg"),
    ('"type":"generate","chroma_guidance":-0.1', "generate.chroma_guidance"),
    ('"type":"inpaint","stems":["bass"],"region":{"start":0,"end":1},"chroma_guidance":11', "inpaint.chroma_guidance"),
    ('"type":"inpaint","stems":["bass"],"region":{"start":0,"end":1},"chord_beats":100', "inpaint.chord_beats"),
    ('"type":"generate","colour":"red"', "generate.colour"),
    ('"type":"generate","id":true', "generate.id"),
    ('"type":"generate","id":[1]', "generate.id"),
    ('"type":"inpaint","region":{"start":0,"end":1}', "inpaint.stems"),
    ('"type":"inpaint","stems":[],"region":{"start":0,"end":1}', "inpaint.stems"),
    ('"type":"continue"', "continue.seconds"),
    ('"type":"continue","seconds":0', "continue.seconds"),
    ('"type":"session.create","time_signature":[7,6]', "session.create.time_signature"),
    ('"type":"session.create","time_signature":[4]', "session.create.time_signature"),
    ('"type":"session.create","time_signature":[4,4.0]', "session.create.time_signature[1]"),
    ('"type":"session.create","length":-2', "session.create.length"),
    ('"type":"session.update"', "session.update.session_id"),
    ('"type":"keep","stem":""', "keep.stem"),
    ('"type":"upload.begin","stem":"drums","frames":0,"total_chunks":1', "upload.begin.frames"),
    ('"type":"upload.begin","frames":10,"total_chunks":1', "upload.begin.stem"),
    ('"type":"upload.begin","stem":"drums","frames":10,"total_chunks":1,"channels":6', "upload.begin.channels"),
    ('"type":"upload.begin","stem":"drums","frames":10,"total_chunks":1,"sample_format":"pcm8"',
     "upload.begin.sample_format"),
    ('"type":"download","take_id":"t","chunk_frames":0', "download.chunk_frames"),
    ('"type":"audition.play","device":1.5', "audition.play.device"),
    ('"type":"audition.play","destination":"speaker"', "audition.play.destination"),
    ('"type":"job.cancel"', "job.cancel.job_id"),
    ('"type":"concept.train","name":"kal imba","paths":["/a.wav"]', "concept.train.name"),
    ('"type":"concept.train","name":"kalimba"', "concept.train"),
    ('"type":"concept.train","name":"k","paths":["/a.wav"],"method":"lora"', "concept.train.method"),
])
def test_invalid_argument_names_the_field(body: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        codec.decode('{"v":1,' + body + "}")
    err = info.value
    assert err.code == "invalid_argument"
    assert err.details["field"] == field
    assert err.message.startswith(field + ":")


def test_message_too_large() -> None:
    text = codec.encode(m.Generate(prompt="a" * 1500))
    assert isinstance(codec.decode(text, max_bytes=len(text)), m.Generate)
    with pytest.raises(MessageTooLarge) as info:
        codec.decode(text, max_bytes=len(text) - 1)
    assert info.value.code == "message_too_large"
    assert info.value.details == {"size": len(text), "limit": len(text) - 1}
    # the size counts UTF-8 bytes, not characters
    wide = '{"v":1,"type":"generate","prompt":"' + "\u00e9" * 600 + '"}'
    with pytest.raises(MessageTooLarge):
        codec.decode(wide, max_bytes=1000)
    # the default limit is 1 MiB
    with pytest.raises(MessageTooLarge):
        codec.decode('{"v":1,"type":"ping","id":"' + "x" * (1 << 20) + '"}')


def test_constructors_validate_values_too() -> None:
    with pytest.raises(InvalidArgument, match="generate.steps"):
        m.Generate(steps=0)
    with pytest.raises(InvalidArgument, match="region.start"):
        m.Region(start=float("nan"), end=1.0)
    with pytest.raises(InvalidArgument):
        codec.encode(object())  # type: ignore[arg-type]


def test_request_id_recovery() -> None:
    assert codec.request_id('{"v":1,"type":"generate","id":"r9","steps":"x"}') == "r9"
    assert codec.request_id('{"v":3,"type":"ping","id":12}') == 12
    assert codec.request_id('{"v":1,"id":true}') is None
    assert codec.request_id("{") is None
    assert codec.request_type('{"v":1,"type":"generate","steps":"x"}') == "generate"


def test_error_event_from_and_to_exception() -> None:
    err = UnsupportedVersion("protocol version 2 is not supported", supported=[1])
    ev = m.Error.from_exception(err, id="r1", in_reply_to="ping")
    back = codec.decode(codec.encode(ev))
    assert back == ev and back.details == {"supported": [1]}
    exc = back.to_exception()
    assert type(exc) is UnsupportedVersion and exc.message == err.message
    failed = m.JobFailed(job_id="j", code="cancelled", message="stopped")
    assert failed.to_exception().code == "cancelled"
