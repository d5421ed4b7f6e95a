"""A real daemon driven over OSC: python-osc datagrams from a UDP socket, and liblo's oscsend/oscdump.

The daemon runs with ``--osc-reply-port`` (replies go to the sender's host at that port, where the
test listens), ``--allow-dir`` (host paths), and HOME pointing at an ALSA ``file`` plugin
configuration, so host audition lands sample for sample in a raw file.
"""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge_helpers import REPO, DaemonProcess, OscClient, free_port
from daw_bridge.wav import read_bext

TAP_TEMPLATE = REPO / "scripts" / "alsa-tap.asoundrc"


@pytest.fixture(scope="module")
def env(module_tmp: Path) -> dict[str, Path]:
    allowed = module_tmp / "allowed"
    allowed.mkdir()
    home = module_tmp / "home"
    home.mkdir()
    tap = module_tmp / "tap.raw"
    (home / ".asoundrc").write_text(TAP_TEMPLATE.read_text().replace("@TAP_FILE@", str(tap)))
    return {"allowed": allowed, "home": home, "tap": tap, "root": module_tmp}


@pytest.fixture(scope="module")
def daemon(env: dict[str, Path]):
    reply_port = free_port(socket.SOCK_DGRAM)
    d = DaemonProcess(env["root"] / "data", "--osc-reply-port", str(reply_port), "--allow-dir", str(env["allowed"]),
                      env={"HOME": str(env["home"])})
    d.reply_port = reply_port  # type: ignore[attr-defined]
    d.start()
    yield d
    assert d.stop() == 0, d.log()[-3000:]


@pytest.fixture()
def osc(daemon: DaemonProcess):
    client = OscClient(daemon.osc_port, listen_port=daemon.reply_port)  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.fixture(scope="module")
def session_id(daemon: DaemonProcess) -> str:
    client = OscClient(daemon.osc_port, listen_port=daemon.reply_port)  # type: ignore[attr-defined]
    try:
        client.send("/stemforge/session/create", "OSC Jam", 100.0, 4, 4, 1.0, "seconds")
        args = client.until("/stemforge/session")
    finally:
        client.close()
    assert args[1:] == ["OSC Jam", 100.0, 4, 4, 48_000]
    return args[0]


def test_ping_pong(osc: OscClient) -> None:
    osc.send("/stemforge/ping")
    assert osc.recv() == ("/stemforge/pong", [])
    osc.send("/stemforge/ping", "abc")
    assert osc.recv() == ("/stemforge/pong", ["abc"])


def test_generate_keep_inpaint_over_osc(osc: OscClient, session_id: str) -> None:
    osc.send("/stemforge/generate", session_id, "dusty drums", "drums,bass", "samples", 4_800, 28_800, 7, 2, -1.0)
    job_id, kind, sid, seed = osc.until("/stemforge/job/accepted")
    assert (kind, sid, seed) == ("generate", session_id, 7)
    progress = []
    while True:
        addr, args = osc.recv(120)
        if addr == "/stemforge/job/progress" and args[0] == job_id:
            progress.append(args)
        if addr in ("/stemforge/job/done", "/stemforge/job/failed"):
            break
    assert addr == "/stemforge/job/done", args
    assert args[:3] == [job_id, session_id, 2]
    groups = [args[3 + 5 * i: 8 + 5 * i] for i in range(2)]
    assert sorted(g[0] for g in groups) == ["bass", "drums"]
    for stem, take_id, path, start, frames in groups:
        assert (start, frames) == (4_800, 24_000)
        assert sf.info(path).frames == 24_000 and read_bext(path).time_reference == 4_800
        assert Path(path).name == f"OSC-Jam_{stem}_100bpm_take1.wav"
    assert any(p[3] == "sampling" for p in progress)

    drums = next(g for g in groups if g[0] == "drums")
    osc.send("/stemforge/keep", session_id, "drums", drums[1], 1)
    assert osc.until("/stemforge/session")[0] == session_id

    osc.send("/stemforge/inpaint", session_id, "fill", "bass", "seconds", 0.3, 0.4, 3, 2, -1.0)
    job2 = osc.until("/stemforge/job/accepted")[0]
    done = osc.until("/stemforge/job/done", match=lambda a: a[0] == job2)
    assert done[2] == 1 and done[3:4] == ["bass"] and done[6:8] == [4_800, 24_000]


def test_upload_by_path_only_inside_allowed_folders(osc: OscClient, session_id: str, env: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    mono = (rng.standard_normal(22_050) * 0.1).astype(np.float32)
    good = env["allowed"] / "melody take.wav"
    sf.write(str(good), mono, 44_100, subtype="FLOAT")
    osc.send("/stemforge/upload/path", session_id, "melody", str(good), 96_000)
    stem, take_id, path, start, frames = osc.until("/stemforge/upload/done")
    assert (stem, start, frames) == ("melody", 96_000, 24_000)  # 0.5 s resampled to 48 kHz
    assert sf.info(path).channels == 2

    outside = env["root"] / "secret.wav"
    sf.write(str(outside), mono, 44_100)
    link = env["allowed"] / "link.wav"
    link.symlink_to(outside)
    nan = env["allowed"] / "nan.wav"
    bad = mono.copy()
    bad[100] = np.nan
    sf.write(str(nan), bad, 44_100, subtype="FLOAT")
    corrupt = env["allowed"] / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    cases = [(str(outside), "path_not_allowed"), (str(link), "path_not_allowed"),
             (str(env["allowed"] / ".." / "secret.wav"), "path_not_allowed"), (str(nan), "non_finite_audio"),
             (str(corrupt), "invalid_audio"), (str(env["allowed"] / "missing.wav"), "invalid_audio")]
    for path_arg, code in cases:
        osc.send("/stemforge/upload/path", session_id, "melody", path_arg)
        err = osc.until("/stemforge/error")
        assert err[0] == code, (path_arg, err)


def test_bad_osc_input_is_answered_or_dropped(osc: OscClient, daemon: DaemonProcess) -> None:
    osc.send("/stemforge/explode", 1)
    assert osc.until("/stemforge/error")[0] == "unknown_message_type"
    osc.send("/stemforge/generate", "", 42)  # prompt must be a string
    assert osc.until("/stemforge/error")[0] == "invalid_argument"
    osc.send("/stemforge/generate", "", "x", "", "seconds", 0.0, 500.0)  # past the end of the session
    assert osc.until("/stemforge/error")[0] == "invalid_region"
    osc.send("/stemforge/job/cancel", "j-nope")
    assert osc.until("/stemforge/error")[0] == "unknown_job"
    for garbage in (b"", b"\x00\x01\x02garbage", b"/stemforge/ping\x00,s\x00\x00", b"#bundle\x00broken", b"\xff" * 64):
        osc.send_raw(garbage)
    osc.send("/stemforge/ping", "after-garbage")
    assert osc.until("/stemforge/pong") == ["after-garbage"]  # nothing answered the garbage, the daemon lives
    assert daemon.log().count("that is not OSC") >= 4


def test_cancel_over_osc(osc: OscClient, session_id: str) -> None:
    osc.send("/stemforge/generate", session_id, "long", "melody", "", 0.0, 0.0, -1, 400, -1.0)
    job_id = osc.until("/stemforge/job/accepted")[0]
    osc.until("/stemforge/job/progress", match=lambda a: a[0] == job_id and a[3] == "sampling")
    osc.send("/stemforge/job/cancel", job_id)
    seen = set()
    deadline = time.monotonic() + 60
    while seen != {"/stemforge/ok", "/stemforge/job/cancelled"} and time.monotonic() < deadline:
        addr, args = osc.recv(60)
        if addr in ("/stemforge/ok", "/stemforge/job/cancelled"):
            seen.add(addr)
        assert addr not in ("/stemforge/job/done", "/stemforge/job/failed"), args
    assert seen == {"/stemforge/ok", "/stemforge/job/cancelled"}


def test_audition_plays_take_into_alsa_tap(osc: OscClient, session_id: str, env: dict[str, Path]) -> None:
    rng = np.random.default_rng(9)
    audio = rng.uniform(-0.5, 0.5, size=(2, 4_800)).astype(np.float32)
    audio[:, 0] = (0.25, -0.25)
    src = env["allowed"] / "click.wav"
    sf.write(str(src), audio.T, 48_000, subtype="FLOAT")
    osc.send("/stemforge/upload/path", session_id, "instrument", str(src), 0)
    take_id = osc.until("/stemforge/upload/done")[1]
    osc.send("/stemforge/audition/play", session_id, take_id)
    addr, args = osc.recv(30)
    assert addr == "/stemforge/audition/started", args
    deadline = time.monotonic() + 20
    want = audio.T.reshape(-1)
    while time.monotonic() < deadline:
        if env["tap"].exists():
            data = np.frombuffer(env["tap"].read_bytes(), dtype="<f4")
            nz = np.flatnonzero(data)
            if nz.size and data.size - nz[0] >= want.size:
                np.testing.assert_array_equal(data[nz[0]: nz[0] + want.size], want)
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the audition never reached the ALSA tap file")
    assert osc.until("/stemforge/audition/stopped") == [args[0], "ended"]  # 0.1 s played to its end
    osc.send("/stemforge/audition/stop")
    assert osc.until("/stemforge/ok") == ["audition.stop"]


@pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                    reason="liblo-tools (oscsend/oscdump) not installed")
def test_oscsend_ping_oscdump_pong(daemon: DaemonProcess) -> None:
    dump = subprocess.Popen(["oscdump", "-L", str(daemon.reply_port)], stdout=subprocess.PIPE,  # type: ignore[attr-defined]
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)  # let oscdump bind
        line = ""
        for _ in range(20):  # UDP: resend until oscdump has bound its port
            subprocess.run(["oscsend", "127.0.0.1", str(daemon.osc_port), "/stemforge/ping", "s", "liblo"],
                           check=True, timeout=10)
            time.sleep(0.2)
            ready, _, _ = select.select([dump.stdout], [], [], 1.0)
            if ready:
                line = dump.stdout.readline()  # type: ignore[union-attr]
                break
        assert line.split()[-3:] == ["/stemforge/pong", "s", '"liblo"'], line  # after oscdump's timestamp
    finally:
        dump.terminate()
        dump.wait(10)
