"""The Python client against a real daemon (``stemforge serve`` as a subprocess on free loopback ports).

One daemon per module, with a temporary data directory (the client reads the token file the
daemon writes there) and HOME holding the ALSA tap (``scripts/alsa-tap.asoundrc``), so host
audition lands in a raw file the test reads back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import soundfile as sf

from clients.python.client import StemforgeClient
from clients.python.connection import ConnectionLost, read_token
from clients.python.sync import SyncClient
from daw_bridge.bench import DaemonProcess
from protocol.errors import (
    InvalidArgument,
    NonFiniteAudio,
    RegionError,
    Unauthorized,
    UnknownSession,
    UnknownStem,
    UnknownTake,
)
from protocol.records import Region

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
pytestmark = pytest.mark.timeout(240)


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("client-daemon")
    home = tmp / "home"
    home.mkdir()
    tap = tmp / "tap.raw"
    template = (REPO / "scripts" / "alsa-tap.asoundrc").read_text()
    (home / ".asoundrc").write_text(template.replace("@TAP_FILE@", str(tap)))
    d = DaemonProcess(tmp / "data", token=None, env={"HOME": str(home), "OMP_NUM_THREADS": "1"})
    d.tap = tap  # type: ignore[attr-defined]
    d.start().wait_ready(180)
    yield d
    d.stop()


def client(d: DaemonProcess, **kw: Any) -> StemforgeClient:
    """A client that finds the port in endpoints.json and the token in the token file."""
    return StemforgeClient(data_dir=d.data_dir, request_timeout=120, **kw)


def _noise(frames: int, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, size=(channels, frames)).astype(np.float32)


def test_ping_info_and_token_file(daemon: DaemonProcess) -> None:
    assert read_token(daemon.data_dir), "the daemon wrote no token file"

    async def go() -> Any:
        async with client(daemon) as sf:
            rtt = await sf.ping()
            info = await sf.info()
            return sf.endpoint.url, rtt, info

    url, rtt, info = run(go())
    assert url == daemon.url
    assert rtt > 0
    assert info.protocol == 1 and info.sample_rate == 48_000
    assert len(info.model.stems) >= 1 and info.model.hash


def test_wrong_token_is_unauthorized(daemon: DaemonProcess) -> None:
    async def go() -> None:
        async with StemforgeClient(daemon.url, token="not-the-token", reconnect=False):
            pass

    with pytest.raises(Unauthorized):
        run(go())


def test_session_create_and_get(daemon: DaemonProcess) -> None:
    async def go() -> tuple[Any, Any]:
        async with client(daemon) as sf:
            created = await sf.create_session(name="groove", bpm=100.0, time_signature=(3, 4), length=2.0)
            return created, await sf.get_session(created.session_id)

    created, got = run(go())
    assert got.session_id == created.session_id
    assert got.bpm == 100.0 and got.time_signature == (3, 4) and got.length_samples == 96_000


def test_generate_then_download_matches_the_take_file(daemon: DaemonProcess) -> None:
    events: list[str] = []

    async def go() -> tuple[Any, Any, Any]:
        async with client(daemon) as sf:
            s = await sf.create_session(name="gen", length=0.5)
            stem = s.stems[0].name
            job = await sf.generate(session_id=s.session_id, prompt="a bass line", stems=(stem,), steps=2, seed=3,
                                    region=Region(unit="seconds", start=0.0, end=0.5))
            done = await job.wait(on_event=lambda e: events.append(e.TYPE))
            dl = await sf.download(done.takes[0].take_id)
            return job, done, dl

    job, done, dl = run(go())
    assert done.job_id == job.job_id and events[-1] == "job.done"
    assert "job.progress" in events
    take = done.takes[0]
    assert take.frames == 24_000 and dl.frames == 24_000 and dl.audio.shape == (2, 24_000)
    path = Path(take.path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == take.sha256 == dl.sha256
    assert dl.verified
    on_disk, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 48_000
    np.testing.assert_array_equal(dl.audio, on_disk.T)  # float32 on the wire carries PCM24 exactly
    assert np.abs(dl.audio).max() > 0


def test_upload_round_trip_float32_and_pcm16(daemon: DaemonProcess, tmp_path: Path) -> None:
    audio = _noise(12_000, seed=5)
    wav = tmp_path / "mono.wav"
    sf.write(str(wav), _noise(4_800, seed=6, channels=1)[0], 48_000, subtype="PCM_16")
    progress: list[tuple[int, int]] = []

    async def go() -> tuple[Any, ...]:
        async with client(daemon) as c:
            s = await c.create_session(name="up", length=1.0)
            stem = s.stems[0].name
            up = await c.upload(audio, stem=stem, session_id=s.session_id, start_sample=4_800, chunk_frames=5_000,
                                on_progress=lambda a, b: progress.append((a, b)))
            back = await c.download(up.take.take_id, path=tmp_path / "back.wav")
            up16 = await c.upload(wav, stem=stem, session_id=s.session_id, sample_format="pcm16")
            back16 = await c.download(up16.take.take_id, sample_format="pcm16")
            session = await c.get_session(s.session_id)
            return up, back, up16, back16, session

    up, back, up16, back16, session = run(go())
    assert progress == [(5_000, 12_000), (10_000, 12_000), (12_000, 12_000)]
    assert up.take.start_sample == 4_800 and up.take.frames == 12_000 and up.take.source == "uploaded"
    np.testing.assert_array_equal(back.audio, audio)
    assert back.verified and back.path is not None
    np.testing.assert_array_equal(sf.read(str(back.path), dtype="float32", always_2d=True)[0].T, audio)
    mono, _ = sf.read(str(wav), dtype="float32")
    np.testing.assert_array_equal(back16.audio, np.stack([mono, mono]))  # mono is duplicated, 16-bit exact
    takes = {t.take_id for st in session.stems for t in st.takes}
    assert {up.take.take_id, up16.take.take_id} <= takes


def test_daemon_errors_are_raised_as_their_classes(daemon: DaemonProcess) -> None:
    async def go() -> dict[str, BaseException]:
        caught: dict[str, BaseException] = {}
        async with client(daemon) as c:
            s = await c.create_session(name="errs", length=1.0)
            for name, coro in {
                "session": c.get_session("no-such-session"),
                "take": c.download("t-no-such-take"),
                "stem": c.generate(session_id=s.session_id, stems=("kazoo",), steps=2),
                "region": c.generate(session_id=s.session_id, steps=2, region=Region(unit="seconds", start=0.5,
                                                                                    end=9.0)),
                "nan": c.upload(np.full((2, 100), np.nan, np.float32), stem=s.stems[0].name, session_id=s.session_id),
            }.items():
                try:
                    await coro
                except Exception as exc:  # noqa: BLE001 - collected and checked below
                    caught[name] = exc
            assert await c.ping() > 0, "the connection survives refused requests"
        return caught

    caught = run(go())
    assert isinstance(caught["session"], UnknownSession)
    assert isinstance(caught["take"], UnknownTake)
    assert isinstance(caught["stem"], UnknownStem)
    assert isinstance(caught["region"], RegionError)
    assert isinstance(caught["nan"], NonFiniteAudio)
    assert caught["session"].code == "unknown_session" and caught["session"].message


def test_cli_ping_session_and_error_output(daemon: DaemonProcess) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "daw_bridge.cli", "client", "--data-dir", str(daemon.data_dir)]
    ok = subprocess.run(base + ["ping", "-c", "2"], capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("pong from ws://127.0.0.1:") == 2
    bad = subprocess.run(base + ["session", "get", "no-such-session"], capture_output=True, text=True, timeout=60,
                         env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error [unknown_session]:")
    refused = subprocess.run(base + ["--token", "wrong", "ping"], capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 1 and "error [unauthorized]" in refused.stderr
    with SyncClient(data_dir=daemon.data_dir) as c:
        s = c.create_session(name="cli", length=1.0)
        take = c.upload(_noise(9_600, seed=4), stem=s.stems[0].name, session_id=s.session_id).take
    # no --loop here: the tap device is not paced in real time, a loop would fill the disk until stopped
    play = subprocess.run(base + ["audition", "play", "--take", take.take_id, "--device", "tapout"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert play.returncode == 0, play.stderr
    assert "playing on tapout (9600 frames)" in play.stdout
    stop = subprocess.run(base + ["audition", "stop"], capture_output=True, text=True, timeout=60, env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout


def _read_tap(tap: Path) -> np.ndarray:
    data = tap.read_bytes() if tap.exists() else b""
    return np.frombuffer(data[: len(data) // 8 * 8], dtype="<f4").reshape(-1, 2).T


def _tap_frames_after_sound(tap: Path) -> int:
    captured = _read_tap(tap)
    nz = np.flatnonzero(np.any(captured != 0, axis=0))
    return captured.shape[1] - int(nz[0]) if nz.size else 0


def test_sync_client_and_host_audition_through_the_alsa_tap(daemon: DaemonProcess) -> None:
    audio = _noise(12_000, seed=9)
    audio[:, 0] = (0.25, -0.25)  # a nonzero first frame for alignment
    tap: Path = daemon.tap  # type: ignore[attr-defined]
    with SyncClient(data_dir=daemon.data_dir) as c:
        s = c.create_session(name="aud", length=1.0)
        seen: list[str] = []
        done = c.generate(session_id=s.session_id, stems=(s.stems[1].name,), steps=2, on_event=lambda e: seen.append(
            e.TYPE), region={"unit": "seconds", "start": 0.0, "end": 0.25})
        assert done.takes[0].frames == 12_000 and seen[-1] == "job.done"
        up = c.upload(audio, stem=s.stems[0].name, session_id=s.session_id)
        names = [d.name for d in c.info().devices]
        assert "tapout" in names
        started = c.audition_play(take_id=up.take.take_id, device="tapout")
        assert started.device == "tapout" and started.frames == 12_000
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _tap_frames_after_sound(tap) < 12_000:
            time.sleep(0.05)
        c.audition_stop()
    captured = _read_tap(tap)
    nz = np.flatnonzero(np.any(captured != 0, axis=0))
    assert nz.size, "nothing was played into the tap"
    off = int(nz[0])
    np.testing.assert_allclose(captured[:, off:off + 12_000], audio, atol=1e-6)


def test_reconnects_after_the_daemon_restarts_and_follows_the_job(daemon: DaemonProcess) -> None:
    async def go() -> tuple[int, int, Any]:
        async with client(daemon, reconnect_timeout=180) as c:
            s = await c.create_session(name="restart", length=0.5)
            first = c.generation
            job = await c.generate(session_id=s.session_id, stems=(s.stems[0].name,), steps=2, seed=1,
                                   region=Region(unit="seconds", start=0.0, end=0.5))
            await asyncio.get_running_loop().run_in_executor(None, daemon.kill)  # no clean shutdown
            daemon.start()
            assert await c.ping() > 0  # idempotent: retried on the new connection
            done = await job.wait(timeout=180)  # the journal finishes the job after the restart
            return first, c.generation, done

    first, second, done = run(go(), timeout=200)
    assert second > first
    assert done.takes and done.takes[0].frames == 24_000
    daemon.wait_ready(60)


def test_a_send_on_a_dead_socket_retries_on_a_new_connection(daemon: DaemonProcess) -> None:
    """The daemon went away and the send noticed before the reader did: the retry must not take the same socket."""

    class DeadSocket:
        async def send(self, data: Any) -> None:
            raise ConnectionError("no close frame received or sent")

    async def go() -> tuple[int, int, float]:
        async with client(daemon, open_timeout=0.5) as c:
            first, live = c.generation, c._ws
            c._ws = DeadSocket()  # what the client holds until its reader sees the close
            try:
                rtt = await c.ping()  # idempotent: retried once, on a fresh connection
            finally:
                await live.close()
            return first, c.generation, rtt

    first, second, rtt = run(go(), timeout=60)
    assert second == first + 1 and rtt > 0


def test_unreachable_daemon_is_connection_lost() -> None:
    from daw_bridge.bench import free_port

    async def go() -> None:
        await StemforgeClient(port=free_port(), token="x", reconnect=False).connect()

    with pytest.raises(ConnectionLost):
        run(go())
    with pytest.raises(InvalidArgument):
        StemforgeClient(url="http://example.org/", token="x")
