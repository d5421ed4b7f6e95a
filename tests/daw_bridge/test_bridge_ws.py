"""A real daemon (``stemforge serve`` on the random-init tiny default model) driven by websockets clients.

Covers: the ping fixed point, server info, sessions, the co-composition loop (generate, keep,
regenerate given the kept take, inpaint a region, continue) with exact sample counts and BWF
TimeReference, uploads and downloads in binary frames, cancel, job list, every bad input of
issue 3 answered with its stable code while a second client keeps being served, and the
handshake security (token, Origin, Host, non-loopback bind).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bridge_helpers import DaemonProcess, OscClient, recv, request, send, wait_job
from daw_bridge.wav import read_bext
from engine import checkpoint as ckpt
from engine.model import DEFAULT_WEIGHTS
from protocol.binary import FrameKind, decode_frame, encode_frame, split_pcm

SHIPPED_DEFAULT = (DEFAULT_WEIGHTS / ckpt.CONFIG_FILE).is_file()

STEPS = 2


@pytest.fixture(scope="module")
def daemon(module_tmp: Path):
    d = DaemonProcess(module_tmp / "data").start()
    yield d
    assert d.stop() == 0, d.log()[-3000:]


@pytest.fixture(scope="module")
def ws(daemon: DaemonProcess):
    with daemon.connect() as conn:
        yield conn


@pytest.fixture(scope="module")
def session(ws) -> dict[str, Any]:
    reply = request(ws, type="session.create", name="Demo Song", bpm=120, time_signature=[4, 4], length=1,
                    length_unit="seconds")
    assert reply["type"] == "session", reply
    return reply["session"]


def _generate(ws, **kw: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    acc = request(ws, type="generate", steps=STEPS, prompt="warm funk", **kw)
    assert acc["type"] == "job.accepted", acc
    done, progress = wait_job(ws, acc["job_id"])
    assert done["type"] == "job.done", done
    assert done["id"] == acc["id"]
    return acc, done, progress


def _read(path: str) -> np.ndarray:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 48_000
    return data.T


def test_ping_is_pong(ws) -> None:
    send(ws, type="ping")
    assert recv(ws)["type"] == "pong"
    assert request(ws, type="ping", id=42) == {"v": 1, "type": "pong", "id": 42, "protocol": 1}


def test_server_info(ws, daemon: DaemonProcess) -> None:
    info = request(ws, type="server.info")
    assert info["type"] == "server" and info["sample_rate"] == 48_000
    assert info["model"]["stems"] == ["bass", "drums", "instrument", "melody"]
    assert len(info["model"]["hash"]) == 64
    assert info["limits"]["max_message_bytes"] == 1 << 20
    if SHIPPED_DEFAULT:  # the daemon serves the embedded trained default, bit for bit what the package holds
        assert info["model"]["trained"] is True and info["model"]["hash"] == ckpt.directory_hash(DEFAULT_WEIGHTS)
        assert "trained default model" in daemon.log()
    else:
        assert info["model"]["trained"] is False and "UNTRAINED" in daemon.log()


def test_generate_keep_regenerate_inpaint_continue(ws, session: dict[str, Any]) -> None:
    sid = session["session_id"]
    # generate two stems over a region given in bars/beats: 120 bpm 4/4, beat 2 .. beat 3 = samples 24000..48000
    acc, done, progress = _generate(ws, session_id=sid, stems=["bass", "drums"], seed=11,
                                    region={"unit": "beats", "start": 1, "end": 2})
    assert acc["seed"] == 11 and done["seed"] == 11
    assert [p["stage"] for p in progress].count("sampling") >= 1
    takes = {t["stem"]: t for t in done["takes"]}
    assert set(takes) == {"bass", "drums"}
    for t in takes.values():
        assert (t["frames"], t["start_sample"], t["sample_rate"]) == (24_000, 24_000, 48_000)
        assert Path(t["path"]).name == f"Demo-Song_{t['stem']}_120bpm_take1.wav"
        assert hashlib.sha256(Path(t["path"]).read_bytes()).hexdigest() == t["sha256"]
        assert read_bext(t["path"]).time_reference == 24_000
        assert sf.info(t["path"]).subtype == "PCM_24" and sf.info(t["path"]).frames == 24_000
        manifest = json.loads(Path(t["manifest_path"]).read_text())
        assert manifest["prompt"] == "warm funk" and manifest["seed"] == 11
        assert len(manifest["model"]["hash"]) == 64 and manifest["parameters"]["steps"] == STEPS
        assert manifest["pipeline"]["grid_offset"] == 0.5  # beat 2 at 120 bpm: the beat clock's grid position

    # keep the bass; regenerating "the others" gives the kept take as context
    kept = request(ws, type="keep", session_id=sid, stem="bass", take_id=takes["bass"]["take_id"])
    assert kept["type"] == "session"
    lanes = {s["name"]: s for s in kept["session"]["stems"]}
    assert lanes["bass"]["kept"] and lanes["bass"]["active_take_id"] == takes["bass"]["take_id"]
    _, done2, _ = _generate(ws, session_id=sid, stems=["drums"], region={"unit": "samples", "start": 24_000,
                                                                         "end": 48_000}, format="float32")
    (drums2,) = done2["takes"]
    assert drums2["number"] == 2 and drums2["frames"] == 24_000 and sf.info(drums2["path"]).subtype == "FLOAT"
    job = request(ws, type="job.list", session_id=sid)
    row = next(j for j in job["jobs"] if j["job_id"] == done2["job_id"])
    assert row["state"] == "done" and row["take_ids"] == [drums2["take_id"]]
    manifest = json.loads(Path(drums2["manifest_path"]).read_text())
    assert manifest["source_takes"]["bass"]["take_id"] == takes["bass"]["take_id"]
    # the same manifest over the wire (take.manifest), and an unknown take answered with its code
    got = request(ws, type="take.manifest", take_id=drums2["take_id"])
    assert got["type"] == "manifest" and got["take_id"] == drums2["take_id"] and got["manifest"] == manifest
    bad = request(ws, type="take.manifest", take_id="t-nope")
    assert bad["type"] == "error" and bad["code"] == "unknown_take"

    # inpaint 0.6 .. 0.8 s of the drums: outside the region the source, sample for sample
    acc = request(ws, type="inpaint", session_id=sid, stems=["drums"], steps=STEPS, format="float32",
                  region={"unit": "seconds", "start": 0.6, "end": 0.8})
    assert acc["type"] == "job.accepted", acc
    done3, _ = wait_job(ws, acc["job_id"])
    assert done3["type"] == "job.done", done3
    (inp,) = done3["takes"]
    assert (inp["start_sample"], inp["frames"]) == (24_000, 24_000)
    src, out = _read(drums2["path"]), _read(inp["path"])
    lo, hi = 28_800 - 24_000, 38_400 - 24_000
    np.testing.assert_array_equal(out[:, :lo], src[:, :lo])
    np.testing.assert_array_equal(out[:, hi:], src[:, hi:])
    assert not np.array_equal(out[:, lo:hi], src[:, lo:hi])

    # continue 0.25 s after the end of the active takes
    acc = request(ws, type="continue", session_id=sid, seconds=0.25, stems=["bass"], steps=STEPS)
    done4, _ = wait_job(ws, acc["job_id"])
    assert done4["type"] == "job.done", done4
    (cont,) = done4["takes"]
    assert (cont["start_sample"], cont["frames"]) == (48_000, 12_000)
    assert read_bext(cont["path"]).time_reference == 48_000
    s = request(ws, type="session.get", session_id=sid)["session"]
    assert s["length_samples"] == 60_000


def test_cancel_running_job(ws) -> None:
    acc = request(ws, type="generate", prompt="long", steps=400, stems=["melody"],
                  region={"unit": "seconds", "start": 0, "end": 0.5})
    for _ in range(500):
        ev = recv(ws)
        if ev.get("job_id") == acc["job_id"] and ev["type"] == "job.progress" and ev["stage"] == "sampling":
            break
    assert request(ws, type="job.cancel", job_id=acc["job_id"])["type"] == "ok"
    end, progress = wait_job(ws, acc["job_id"])
    assert end["type"] == "job.cancelled"
    assert all(p["step"] < 400 for p in progress)
    assert request(ws, type="job.cancel", job_id=acc["job_id"])["code"] == "invalid_argument"  # already ended


def _worker_pid(daemon: DaemonProcess) -> int:
    """The engine worker: the daemon's child started by multiprocessing's spawn."""
    pid = daemon.proc.pid  # type: ignore[union-attr]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(workers) == 1, children
    return workers[0]


def test_worker_killed_mid_job_fails_job_and_daemon_keeps_serving(daemon: DaemonProcess, ws) -> None:
    pid = _worker_pid(daemon)
    acc = request(ws, type="generate", prompt="doomed", steps=400, stems=["bass"],
                  region={"unit": "seconds", "start": 0, "end": 0.5})
    for _ in range(500):
        ev = recv(ws)
        if ev.get("job_id") == acc["job_id"] and ev["type"] == "job.progress" and ev["stage"] == "sampling":
            break
    os.kill(pid, signal.SIGKILL)
    end, _ = wait_job(ws, acc["job_id"])
    assert end["type"] == "job.failed" and end["code"] == "worker_crashed", end
    assert "signal 9" in end["message"]
    assert request(ws, type="ping")["type"] == "pong"  # the daemon never stopped serving
    _, done, _ = _generate(ws, stems=["bass"], region={"unit": "seconds", "start": 0, "end": 0.25})
    assert done["takes"][0]["frames"] == 12_000
    assert _worker_pid(daemon) != pid
    jobs = {j["job_id"]: j for j in request(ws, type="job.list")["jobs"]}
    assert jobs[acc["job_id"]]["state"] == "failed" and jobs[acc["job_id"]]["error"]["code"] == "worker_crashed"


def test_chords_reach_the_model_and_the_take_manifest(ws) -> None:
    _, done, _ = _generate(ws, stems=["bass"], chords="Am F", chord_beats=2, chord_cfg=5, chroma_guidance=0.5,
                           region={"unit": "seconds", "start": 0, "end": 0.25})
    manifest = json.loads(Path(done["takes"][0]["manifest_path"]).read_text())
    assert manifest["parameters"]["chords"] == "Am F" and manifest["parameters"]["chord_beats"] == 2
    assert manifest["parameters"]["chord_cfg"] == 5 and manifest["pipeline"]["chord_cfg"] == 5.0
    assert manifest["parameters"]["chroma_guidance"] == 0.5 and manifest["pipeline"]["chroma_guidance"] == 0.5
    assert manifest["pipeline"]["chords_source"] == "given"
    assert manifest["pipeline"]["chords"]["chords"] == ["A min", "F"]
    assert manifest["pipeline"]["chords"]["beats_per_chord"] == 2
    acc = request(ws, type="generate", steps=STEPS, prompt="warm funk", stems=["bass"], chords="Am Q9",
                  region={"unit": "seconds", "start": 0, "end": 0.25})
    end, _ = wait_job(ws, acc["job_id"])
    assert end["type"] == "job.failed" and end["code"] == "invalid_argument" and "Q9" in end["message"], end
    assert request(ws, type="ping")["type"] == "pong"


def _upload(ws, audio: np.ndarray, stem: str, session_id: str | None, start: int = 0,
            fmt: str = "float32", corrupt: bool = False) -> dict[str, Any]:
    pcm = np.ascontiguousarray(audio.T).astype("<f4").tobytes()
    ready = request(ws, type="upload.begin", session_id=session_id, stem=stem, sample_format=fmt, channels=2,
                    frames=audio.shape[1], total_chunks=-(-audio.shape[1] // 10_000), start_sample=start,
                    name="bass.wav", sha256=hashlib.sha256(pcm).hexdigest())
    assert ready["type"] == "upload.ready", ready
    for frame in split_pcm(pcm, kind=FrameKind.UPLOAD, transfer_id=ready["transfer_id"], sample_rate=48_000,
                           channels=2, sample_format=fmt, chunk_frames=10_000):
        data = bytearray(encode_frame(frame))
        if corrupt:
            data[-1] ^= 0xFF
        ws.send(bytes(data))
        if corrupt:
            return recv(ws)
    return request(ws, type="upload.end", transfer_id=ready["transfer_id"])


def test_upload_then_download_round_trip(ws, session: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 25_000)) * 0.1).astype(np.float32)
    done = _upload(ws, audio, "instrument", session["session_id"], start=4_800)
    assert done["type"] == "upload.done", done
    take = done["take"]
    assert (take["frames"], take["start_sample"], take["source"]) == (25_000, 4_800, "uploaded")
    np.testing.assert_array_equal(_read(take["path"]), audio)  # stored losslessly
    assert read_bext(take["path"]).time_reference == 4_800

    begin = request(ws, type="download", take_id=take["take_id"], sample_format="pcm24", chunk_frames=7_000)
    assert begin["type"] == "download.begin" and begin["total_chunks"] == 4 and begin["frames"] == 25_000
    chunks = []
    for _ in range(begin["total_chunks"]):
        data = ws.recv(timeout=30)
        assert isinstance(data, bytes)
        chunks.append(decode_frame(data))
    assert [c.chunk_index for c in chunks] == [0, 1, 2, 3] and {c.kind for c in chunks} == {FrameKind.DOWNLOAD}
    end = recv(ws)
    assert end["type"] == "download.end" and end["frames"] == 25_000
    raw = np.frombuffer(b"".join(c.payload for c in chunks), dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints).reshape(-1, 2).T
    np.testing.assert_allclose(ints / 2**23, audio, atol=1.0 / 2**23)

    # audition streamed to this client: binary frames of kind stream, float32, the loop region only
    started = request(ws, type="audition.play", take_id=take["take_id"], destination="client",
                      loop={"unit": "samples", "start": 9_800, "end": 19_800})
    assert started["type"] == "audition.started" and started["frames"] == 10_000, started
    assert (started["loop_start"], started["loop_end"]) == (9_800, 19_800)
    got = []
    while sum(f.frames for f in got) < 10_000:
        f = decode_frame(ws.recv(timeout=30))
        assert f.kind == FrameKind.STREAM and f.transfer_id == started["transfer_id"]
        got.append(f)
    streamed = np.frombuffer(b"".join(f.payload for f in got), dtype="<f4").reshape(-1, 2).T
    np.testing.assert_array_equal(streamed, audio[:, 5_000:15_000])


BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("malformed json", "{not json", "malformed_message"),
    ("not an object", "[1, 2]", "malformed_message"),
    ("NaN literal", '{"v": 1, "type": "ping", "id": NaN}', "malformed_message"),
    ("unknown type", {"v": 1, "type": "explode"}, "unknown_message_type"),
    ("event type sent as request", {"v": 1, "type": "pong"}, "unknown_message_type"),
    ("bad version", {"v": 7, "type": "ping"}, "unsupported_version"),
    ("missing version", {"type": "ping"}, "unsupported_version"),
    ("wrong argument type", {"v": 1, "type": "generate", "steps": "many"}, "invalid_argument"),
    ("unknown field", {"v": 1, "type": "ping", "bogus": 1}, "invalid_argument"),
    ("oversized message", {"v": 1, "type": "generate", "prompt": "x" * (1 << 20)}, "message_too_large"),
    ("region past the end", {"v": 1, "type": "generate", "region": {"unit": "seconds", "start": 0, "end": 99}},
     "invalid_region"),
    ("empty region", {"v": 1, "type": "generate", "region": {"unit": "samples", "start": 5, "end": 5}},
     "invalid_region"),
    ("unknown session", {"v": 1, "type": "session.get", "session_id": "s-nope"}, "unknown_session"),
    ("unknown stem", {"v": 1, "type": "generate", "stems": ["vocals"]}, "unknown_stem"),
    ("unknown take", {"v": 1, "type": "download", "take_id": "t-nope"}, "unknown_take"),
    ("unknown job", {"v": 1, "type": "job.cancel", "job_id": "j-nope"}, "unknown_job"),
    ("unknown sampler", {"v": 1, "type": "generate", "sampler": "euler-magic"}, "invalid_argument"),
    ("upload too large", {"v": 1, "type": "upload.begin", "stem": "bass", "frames": 10**9, "total_chunks": 1000},
     "message_too_large"),
    ("path outside allowed folders", {"v": 1, "type": "upload.path", "stem": "bass", "path": "/etc/passwd"},
     "path_not_allowed"),
]


@pytest.mark.parametrize("name,payload,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_answered_with_code(daemon: DaemonProcess, ws, name: str, payload: Any, code: str) -> None:
    with daemon.connect() as bad:
        bad.send(payload if isinstance(payload, str) else json.dumps(payload))
        reply = recv(bad)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        # the same connection and another client are still served
        assert request(bad, type="ping")["type"] == "pong"
    assert request(ws, type="ping")["type"] == "pong"


def test_bad_uploads(ws, session: dict[str, Any]) -> None:
    sid = session["session_id"]
    nan = np.zeros((2, 12_000), dtype=np.float32)
    nan[1, 777] = np.nan
    assert _upload(ws, nan, "bass", sid)["code"] == "non_finite_audio"
    assert _upload(ws, np.zeros((2, 12_000), np.float32), "bass", sid, corrupt=True)["code"] == "malformed_message"
    # a chunk for a transfer that was never opened
    frame = next(split_pcm(b"\0" * 8, kind=FrameKind.UPLOAD, transfer_id=999_999, sample_rate=48_000, channels=2,
                           sample_format="float32", chunk_frames=1))
    ws.send(encode_frame(frame))
    assert recv(ws)["code"] == "invalid_argument"
    ws.send(b"garbage bytes")
    assert recv(ws)["code"] == "malformed_message"
    # incomplete transfer
    ready = request(ws, type="upload.begin", session_id=sid, stem="bass", frames=100, total_chunks=2)
    assert request(ws, type="upload.end", transfer_id=ready["transfer_id"])["code"] == "invalid_argument"
    assert request(ws, type="upload.begin", session_id=sid, stem="vocals", frames=100,
                   total_chunks=1)["code"] == "unknown_stem"
    assert request(ws, type="ping")["type"] == "pong"


# ---- handshake security ------------------------------------------------------------------------------
def _status(url: str, **kw: Any) -> int:
    try:
        with connect(url, open_timeout=10, **kw):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def _raw_handshake(daemon: DaemonProcess, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", daemon.ws_port), timeout=10) as sock:
        sock.sendall((f"GET /?token={daemon.token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        return sock.recv(4096)


def test_auth_origin_host(daemon: DaemonProcess) -> None:
    url, token = daemon.url, daemon.token
    bearer = {"Authorization": f"Bearer {token}"}
    assert _status(url) == 401
    assert _status(url, additional_headers={"Authorization": "Bearer wrong-token-wrong-token"}) == 401
    assert _status(url + "?token=nope") == 401
    assert _status(url + f"?token={token}") == 101
    assert _status(url, additional_headers=bearer) == 101
    assert _status(url, additional_headers=bearer, origin="http://evil.example") == 403
    assert _status(url, additional_headers=bearer, origin=f"http://localhost:{daemon.ws_port}") == 101
    assert _status(url, additional_headers=bearer, origin=f"http://127.0.0.1:{daemon.ws_port + 1}") == 403
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example
    assert _raw_handshake(daemon, f"evil.example:{daemon.ws_port}").startswith(b"HTTP/1.1 403")
    assert _raw_handshake(daemon, f"localhost:{daemon.ws_port}").startswith(b"HTTP/1.1 101")
    # two Host headers (websockets' client adds one, we add another)
    assert _status(url + f"?token={token}", additional_headers={"Host": f"evil.example:{daemon.ws_port}"}) == 403
    with daemon.connect() as again:
        assert request(again, type="ping")["type"] == "pong"


def test_osc_ping_replies_to_sender(daemon: DaemonProcess) -> None:
    """Without --osc-reply-port the pong goes back to the sender's own address."""
    client = OscClient(daemon.osc_port)
    try:
        client.send("/stemforge/ping", "sender")
        assert client.recv(30) == ("/stemforge/pong", ["sender"])
    finally:
        client.close()
