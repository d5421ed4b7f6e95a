"""OSC address space: literal argument tuples both ways for every address, and every refusal."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from protocol import messages as m
from protocol.errors import InvalidArgument, UnknownMessageType
from protocol.osc import ADDRESS_OF_TYPE, OSC_ADDRESSES, message_to_osc, osc_to_message, type_tags
from protocol.records import ModelInfo, Region, SessionInfo, Take

P = "/stemforge"
_BASS = Take(stem="bass", take_id="t-1", path="/data/s/groove_bass_120bpm_take1.wav", start_sample=96000,
             frames=384000, job_id="j-1")
_DRUMS = Take(stem="drums", take_id="t-2", path="/data/s/groove_drums_120bpm_take1.wav", start_sample=96000,
              frames=384000, job_id="j-1")

# (address, canonical args, message): each direction must give the other exactly
CASES: list[tuple[str, tuple[Any, ...], m.Message]] = [
    (f"{P}/ping", (), m.Ping()),
    (f"{P}/ping", ("r1",), m.Ping(id="r1")),
    (f"{P}/server/info", (), m.ServerInfoRequest()),
    (f"{P}/session/create", ("groove", 96.0, 7, 8, 8.0, "bars"),
     m.SessionCreate(name="groove", bpm=96.0, time_signature=(7, 8), length=8.0, length_unit="bars")),
    (f"{P}/session/create", ("groove",), m.SessionCreate(name="groove")),
    (f"{P}/session/get", ("s-1",), m.SessionGet(session_id="s-1")),
    (f"{P}/session/get", (), m.SessionGet()),
    (f"{P}/generate", ("s-1", "funky bass", "bass,melody", "bars", 2.0, 4.0, 42, 20, 3.0),
     m.Generate(session_id="s-1", prompt="funky bass", stems=("bass", "melody"),
                region=Region(unit="bars", start=2, end=4), seed=42, steps=20, cfg=3.0)),
    (f"{P}/generate", ("", "ambient pads", ""), m.Generate(prompt="ambient pads")),
    (f"{P}/generate", ("s-1", "x", "drums", "samples", 0, 96000),
     m.Generate(session_id="s-1", prompt="x", stems=("drums",), region=Region(unit="samples", start=0, end=96000))),
    (f"{P}/inpaint", ("s-1", "a bass fill", "bass", "beats", 12.0, 16.0, 7),
     m.Inpaint(session_id="s-1", prompt="a bass fill", stems=("bass",), region=Region(unit="beats", start=12, end=16),
               seed=7)),
    (f"{P}/continue", ("s-1", "keep going", 8.0), m.Continue(session_id="s-1", prompt="keep going", seconds=8.0)),
    (f"{P}/continue", ("s-1", "keep going", 8.0, "bass,drums", -1, 30),
     m.Continue(session_id="s-1", prompt="keep going", seconds=8.0, stems=("bass", "drums"), steps=30)),
    (f"{P}/keep", ("s-1", "drums"), m.Keep(session_id="s-1", stem="drums")),
    (f"{P}/keep", ("s-1", "drums", "t-2", 0), m.Keep(session_id="s-1", stem="drums", take_id="t-2", keep=False)),
    (f"{P}/audition/play", ("s-1",), m.AuditionPlay(session_id="s-1")),
    (f"{P}/audition/play", ("s-1", "t-1", "seconds", 4.0, 8.0, "tapout"),
     m.AuditionPlay(session_id="s-1", take_id="t-1", loop=Region(unit="seconds", start=4, end=8), device="tapout")),
    (f"{P}/audition/stop", (), m.AuditionStop()),
    (f"{P}/audition/stop", ("au-1",), m.AuditionStop(audition_id="au-1")),
    (f"{P}/job/cancel", ("j-1",), m.JobCancel(job_id="j-1")),
    (f"{P}/upload/path", ("s-1", "drums", "/home/me/Music/drums.wav", 96000),
     m.UploadPath(session_id="s-1", stem="drums", path="/home/me/Music/drums.wav", start_sample=96000)),
    (f"{P}/concept/train", ("kalimba-ish", "pivotal", 400, "/music/k1.wav", "/music/k2.wav"),
     m.ConceptTrain(name="kalimba-ish", steps=400, paths=("/music/k1.wav", "/music/k2.wav"))),
    (f"{P}/pong", (), m.Pong()),
    (f"{P}/pong", ("r1",), m.Pong(id="r1")),
    (f"{P}/server", ("0.1.0", "tiny", "b3c1e0", "bass,drums,instrument,melody", 48000, 1),
     m.ServerInfo(version="0.1.0", model=ModelInfo(name="tiny", hash="b3c1e0"))),
    (f"{P}/session", ("s-1", "groove", 120.0, 4, 4, 768000),
     m.Session(session=SessionInfo(session_id="s-1", name="groove", length_samples=768000))),
    (f"{P}/job/accepted", ("j-1", "generate", "s-1", 42),
     m.JobAccepted(job_id="j-1", kind="generate", session_id="s-1", seed=42)),
    (f"{P}/job/progress", ("j-1", 10, 50, "sampling"), m.JobProgress(job_id="j-1", step=10, total=50)),
    (f"{P}/job/done", ("j-1", "s-1", 2, "bass", "t-1", "/data/s/groove_bass_120bpm_take1.wav", 96000, 384000,
                       "drums", "t-2", "/data/s/groove_drums_120bpm_take1.wav", 96000, 384000),
     m.JobDone(job_id="j-1", session_id="s-1", takes=(_BASS, _DRUMS))),
    (f"{P}/job/failed", ("j-1", "worker_crashed", "the engine worker died"),
     m.JobFailed(job_id="j-1", code="worker_crashed", message="the engine worker died")),
    (f"{P}/job/cancelled", ("j-1",), m.JobCancelledEvent(job_id="j-1")),
    (f"{P}/upload/done", ("drums", "t-2", "/data/s/drums.wav", 0, 48000),
     m.UploadDone(take=Take(stem="drums", take_id="t-2", path="/data/s/drums.wav", frames=48000))),
    (f"{P}/audition/started", ("au-1", "tapout"), m.AuditionStarted(audition_id="au-1", device="tapout")),
    (f"{P}/audition/stopped", ("au-1", "ended"), m.AuditionStopped(audition_id="au-1", reason="ended")),
    (f"{P}/ok", ("job.cancel",), m.Ok(request="job.cancel")),
    (f"{P}/error", ("invalid_argument", "bad"), m.Error(code="invalid_argument", message="bad")),
    (f"{P}/error", ("unknown_take", "no take t-9", f"{P}/keep"),
     m.Error(code="unknown_take", message="no take t-9", in_reply_to=f"{P}/keep")),
]


def test_every_address_has_a_case() -> None:
    assert {c[0] for c in CASES} == set(OSC_ADDRESSES)
    assert {s.direction for s in OSC_ADDRESSES.values()} == {"request", "reply"}
    for spec in OSC_ADDRESSES.values():
        assert spec.message_type in m.MESSAGE_TYPES
        assert all(a.tag in "ifs" for a in (*spec.args, *spec.group))
        for reply in spec.replies:
            assert OSC_ADDRESSES[reply].direction == "reply"
    # the fixed points and the addresses it names
    assert OSC_ADDRESSES[f"{P}/ping"].replies == (f"{P}/pong",)
    for name in ("generate", "inpaint", "continue", "keep", "audition/play", "audition/stop", "job/cancel",
                 "upload/path", "job/accepted", "job/progress", "job/done", "job/failed", "error"):
        assert f"{P}/{name}" in OSC_ADDRESSES


@pytest.mark.parametrize(("address", "args", "msg"), CASES, ids=[f"{c[0]}{len(c[1])}" for c in CASES])
def test_literal_args_both_ways(address: str, args: tuple[Any, ...], msg: m.Message) -> None:
    assert osc_to_message(address, args) == msg
    assert message_to_osc(msg) == (address, args)
    assert ADDRESS_OF_TYPE[msg.TYPE] == address


def test_ints_accepted_for_floats() -> None:
    assert osc_to_message(f"{P}/continue", ("s", "p", 8)) == m.Continue(session_id="s", prompt="p", seconds=8.0)
    msg = osc_to_message(f"{P}/generate", ("", "p", "", "seconds", 1, 2))
    assert msg.region == Region(unit="seconds", start=1.0, end=2.0) and isinstance(msg.region.start, float)


@pytest.mark.parametrize(("address", "args", "field"), [
    (f"{P}/generate", ("s-1", 5, ""), f"{P}/generate.prompt"),
    (f"{P}/generate", ("s-1", "p", "", "bars", "2", 4.0), f"{P}/generate.start"),
    (f"{P}/generate", ("s-1", "p", "", "bars", 2.0, 4.0, 1.5), f"{P}/generate.seed"),
    (f"{P}/generate", ("s-1", "p", "", "bars", 2.0, 4.0, True), f"{P}/generate.seed"),
    (f"{P}/generate", ("s-1", "p", "", "bars", 2.0, 4.0, 2**31), f"{P}/generate.seed"),
    (f"{P}/generate", ("s-1", "p", "", "parsecs", 2.0, 4.0), "region.unit"),
    (f"{P}/generate", ("s-1", "p", "", "", 0.0, 0.0, -1, 5000), "generate.steps"),
    (f"{P}/generate", ("s-1",), f"{P}/generate.prompt"),
    (f"{P}/generate", ("s-1", "p", "", "", 0.0, 0.0, -1, 0, -1.0, "extra"), f"{P}/generate"),
    (f"{P}/inpaint", ("s-1", "p", "", "bars", 2.0, 4.0), "inpaint.stems"),
    (f"{P}/inpaint", ("s-1", "p", "bass", "", 2.0, 4.0), f"{P}/inpaint.unit"),
    (f"{P}/continue", ("s-1", "p", "8"), f"{P}/continue.seconds"),
    (f"{P}/ping", (1,), f"{P}/ping.id"),
    (f"{P}/ping", ("a", "b"), f"{P}/ping"),
    (f"{P}/job/cancel", (), f"{P}/job/cancel.job_id"),
    (f"{P}/keep", ("s-1", "drums", "t-2", "yes"), f"{P}/keep.keep"),
    (f"{P}/upload/path", ("s-1", "drums", "/a.wav", -5), "upload.path.start_sample"),
    (f"{P}/concept/train", ("k", "pivotal", 0), f"{P}/concept/train.path"),
    (f"{P}/concept/train", ("k", "pivotal", 0, 3), f"{P}/concept/train.path"),
    (f"{P}/job/done", ("j", "s", 2, "bass", "t", "/p", 0, 1), f"{P}/job/done.count"),
    (f"{P}/job/done", ("j", "s", 1, "bass", "t", "/p", "0", 1), f"{P}/job/done.start_sample"),
    (f"{P}/job/accepted", ("j", "render", "", -1), f"{P}/job/accepted.kind"),
])
def test_invalid_arguments(address: str, args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        osc_to_message(address, args)
    assert info.value.code == "invalid_argument"
    assert info.value.details["field"] == field
    assert address in info.value.message


def test_unknown_address() -> None:
    for address in (f"{P}/pingg", "/ping", f"{P}/generate/", ""):
        with pytest.raises(UnknownMessageType):
            osc_to_message(address, ())


def test_messages_without_osc_form() -> None:
    with pytest.raises(InvalidArgument, match="no OSC form"):
        message_to_osc(m.Download(take_id="t-1"))
    with pytest.raises(InvalidArgument, match="whole bars"):
        message_to_osc(m.Generate(region=Region(unit="bars", start=2, end=4, start_beat=3)))
    with pytest.raises(InvalidArgument, match="reference upload"):
        message_to_osc(m.UploadDone(reference_id="r-1"))


def test_lossy_fields_are_dropped_not_invented() -> None:
    full = Take(stem="bass", take_id="t-1", path="/p.wav", frames=10, sha256="ab" * 32, number=3)
    address, args = message_to_osc(m.JobDone(job_id="j", takes=(full,), seed=5))
    assert args == ("j", "", 1, "bass", "t-1", "/p.wav", 0, 10)
    back = osc_to_message(address, args)
    assert back.takes[0].sha256 == "" and back.takes[0].path == "/p.wav" and back.seed is None
    # seeds past int32 cannot travel over OSC: sent as -1 (none)
    assert message_to_osc(m.JobAccepted(job_id="j", kind="generate", seed=2**40))[1][-1] == -1


# ---- real OSC bytes ---------------------------------------------------------------------------------------
def _datagram(address: str, args: tuple[Any, ...]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for value, tag in zip(args, type_tags(args)):
        builder.add_arg(value, tag)
    return builder.build().dgram


@pytest.mark.parametrize(("address", "args", "msg"), CASES, ids=[f"{c[0]}{len(c[1])}" for c in CASES])
def test_python_osc_datagram_round_trip(address: str, args: tuple[Any, ...], msg: m.Message) -> None:
    out_address, out_args = message_to_osc(msg)
    spec = OSC_ADDRESSES[address]
    tags = type_tags(out_args)
    # the tags sent are the documented ones (region positions in samples go as exact ints)
    declared = "".join(a.tag for a in spec.args)[: len(tags)] if not (spec.group or spec.variadic) else None
    if declared is not None and not (isinstance(msg, (m.Generate, m.Inpaint)) and msg.region
                                     and msg.region.unit == "samples"):
        assert tags == declared
    parsed = OscMessage(_datagram(out_address, out_args))
    assert osc_to_message(parsed.address, parsed.params) == msg


def test_literal_ping_datagram() -> None:
    # "/stemforge/ping" padded to 16 bytes, then the empty type tag string "," padded to 4
    parsed = OscMessage(b"/stemforge/ping\x00,\x00\x00\x00")
    assert osc_to_message(parsed.address, parsed.params) == m.Ping()
    assert _datagram(*message_to_osc(m.Pong())) == b"/stemforge/pong\x00,\x00\x00\x00"


def test_float32_positions_resolve_to_the_intended_sample() -> None:
    from protocol.region import resolve_region

    # 0.1 s as an OSC float32 arrives as 0.10000000149011612: still sample 4800
    parsed = OscMessage(_datagram("/stemforge/generate", ("", "p", "", "seconds", 0.1, 2.7)))
    msg = osc_to_message(parsed.address, parsed.params)
    assert msg.region.start != 0.1
    assert resolve_region(msg.region, total_samples=480_000) == (4_800, 129_600)


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend) not installed")
def test_oscsend_datagrams() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = str(sock.getsockname()[1])
    sends = [
        (["/stemforge/ping"], m.Ping()),
        (["/stemforge/generate", "ssssff", "", "funky bass", "bass,drums", "bars", "2", "4"],
         m.Generate(prompt="funky bass", stems=("bass", "drums"), region=Region(unit="bars", start=2, end=4))),
        (["/stemforge/inpaint", "ssssiii", "s-1", "fill", "bass", "samples", "96000", "144000", "7"],
         m.Inpaint(session_id="s-1", prompt="fill", stems=("bass",), region=Region(unit="samples", start=96000,
                   end=144000), seed=7)),
        (["/stemforge/keep", "ss", "s-1", "drums"], m.Keep(session_id="s-1", stem="drums")),
        (["/stemforge/job/cancel", "s", "j-1"], m.JobCancel(job_id="j-1")),
    ]
    try:
        for argv, expected in sends:
            subprocess.run(["oscsend", "127.0.0.1", port, *argv], check=True, timeout=10)
            data, _ = sock.recvfrom(65536)
            parsed = OscMessage(data)
            assert osc_to_message(parsed.address, parsed.params) == expected
        # a wrong type from a real peer is refused naming the argument
        subprocess.run(["oscsend", "127.0.0.1", port, "/stemforge/job/cancel", "i", "5"], check=True, timeout=10)
        parsed = OscMessage(sock.recvfrom(65536)[0])
        with pytest.raises(InvalidArgument, match="job_id"):
            osc_to_message(parsed.address, parsed.params)
    finally:
        sock.close()


@pytest.mark.skipif(shutil.which("oscdump") is None, reason="liblo-tools (oscdump) not installed")
def test_oscdump_reads_a_job_done_reply() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done = m.JobDone(job_id="j-1", session_id="s-1", takes=(_BASS, _DRUMS))
        data = _datagram(*message_to_osc(done))
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        line = ""
        deadline = time.monotonic() + 10
        while not line and time.monotonic() < deadline:  # oscdump may not be listening yet: resend
            out.sendto(data, ("127.0.0.1", port))
            try:
                line = _readline(dump, 0.5)
            except TimeoutError:
                continue
        out.close()
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    # oscdump prints "<timetag> /address tags args..."
    words = line.split()
    assert words[words.index("/stemforge/job/done") + 1] == "ssisssiisssii"
    assert '"bass"' in line and "96000" in line and "384000" in line


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise TimeoutError
    return proc.stdout.readline().strip()
