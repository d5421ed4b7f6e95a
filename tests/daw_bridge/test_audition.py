"""Audition through a real PortAudio output: the ALSA ``file`` plugin device ``tapout``.

PortAudio reads the ALSA configuration when it initialises, so each playback runs in a
subprocess whose HOME holds ``scripts/alsa-tap.asoundrc`` pointing into the test's tmp dir.
The plugin writes what PortAudio plays as raw interleaved FLOAT_LE stereo (the stream is
opened as float32), after some leading silence that the tests align away. Its ``null`` slave is
not paced in real time: the file fills as fast as the callback runs (a loop fills it quickly).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from daw_bridge.audition import Audition, OutputDevice, resolve_device, validate_loop
from protocol.errors import AudioDeviceError, InvalidAudio, NonFiniteAudio, RegionError

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "scripts" / "alsa-tap.asoundrc"


def _portaudio_missing() -> str | None:
    probe = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    if probe.returncode != 0 and "PortAudio library not found" in probe.stderr:
        return "libportaudio2 is not installed (sounddevice cannot load PortAudio)"
    return None


_MISSING = _portaudio_missing()
needs_portaudio = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def _tap_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    home.mkdir()
    raw = tmp_path / "tap.raw"
    (home / ".asoundrc").write_text(TEMPLATE.read_text().replace("@TAP_FILE@", str(raw)))
    return home, raw


def _run_in_tap(tmp_path: Path, body: str, audio: np.ndarray) -> tuple[np.ndarray, str]:
    """Run ``body`` (with ``audio`` loaded and ``Audition`` imported) in a process whose ALSA is the tap."""
    home, raw = _tap_home(tmp_path)
    np.save(tmp_path / "audio.npy", audio)
    script = textwrap.dedent("""
        import sys, time, json
        import numpy as np
        from daw_bridge.audition import Audition
        audio = np.load(sys.argv[1])
    """) + textwrap.dedent(body)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "audio.npy")], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert raw.exists(), f"the tap file was not written; stderr: {proc.stderr}"
    data = np.frombuffer(raw.read_bytes(), dtype="<f4")
    assert data.size % 2 == 0
    return data.reshape(-1, 2).T.copy(), proc.stdout  # (2, M)


def _first_sound(captured: np.ndarray) -> int:
    nz = np.flatnonzero(np.any(captured != 0.0, axis=0))
    assert nz.size, "the tap file holds only silence"
    return int(nz[0])


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = rng.uniform(-0.5, 0.5, size=(2, int(seconds * 48_000))).astype(np.float32)
    audio[:, 0] = (0.25, -0.25)  # a nonzero first frame makes alignment exact
    return audio


@needs_portaudio
def test_play_lands_sample_for_sample_in_the_tap(tmp_path: Path) -> None:
    audio = _noise(0.25, seed=1)
    captured, out = _run_in_tap(tmp_path, """
        a = Audition()
        names = [d["name"] for d in a.devices()]
        reasons = []
        info = a.play(audio, device="tapout", on_end=reasons.append)
        deadline = time.monotonic() + 10
        while a.stream_open and time.monotonic() < deadline:  # released by the watcher, without wait()
            time.sleep(0.01)
        print(json.dumps({"names": names, "device": info["name"], "after": a.is_playing, "reasons": reasons,
                          "closed": not a.stream_open, "waited": a.wait(timeout=10)}))
    """, audio)
    report = __import__("json").loads(out.strip().splitlines()[-1])
    assert "tapout" in report["names"]
    assert report["device"] == "tapout"
    assert report["after"] is False
    assert report["reasons"] == ["ended"] and report["closed"] is True and report["waited"] is True
    off = _first_sound(captured)
    n = audio.shape[1]
    assert captured.shape[1] >= off + n, "fewer frames captured than played"
    np.testing.assert_allclose(captured[:, off:off + n], audio, atol=1e-6)
    assert not np.any(captured[:, off + n:]), "something other than silence followed the take"


@needs_portaudio
def test_loop_region_repeats_only_the_region(tmp_path: Path) -> None:
    audio = _noise(0.1, seed=2)
    start, end = 1000, 2200
    audio[:, start] = (0.3, -0.3)  # the region's first frame is the first sound heard
    captured, out = _run_in_tap(tmp_path, f"""
        a = Audition()
        reasons = []
        a.play(audio, device="tapout", loop=({start}, {end}), on_end=reasons.append)
        time.sleep(0.3)
        assert a.is_playing, "a looped playback must not end on its own"
        print(a.stop(), a.is_playing, *reasons)
    """, audio)
    assert out.split() == ["True", "False", "stopped"]
    off = _first_sound(captured)
    region = audio[:, start:end]
    n = region.shape[1]
    cycles = (captured.shape[1] - off) // n
    assert cycles >= 3, f"only {cycles} loop cycles were captured"
    # every whole cycle is the region (the file device is not paced in real time: there may be thousands)
    passes = captured[:, off:off + cycles * n].reshape(2, cycles, n)
    assert float(np.abs(passes - region[:, None, :]).max()) <= 1e-6


@needs_portaudio
def test_unknown_device_is_an_audio_device_error(tmp_path: Path) -> None:
    audio = _noise(0.05, seed=3)
    _, out = _run_in_tap(tmp_path, """
        from protocol.errors import AudioDeviceError
        a = Audition()
        try:
            a.play(audio, device="no-such-output")
        except AudioDeviceError as exc:
            print(exc.code, exc.details["available"])
        a.play(audio)  # the default device (tapout via pcm.!default) so the tap file exists
        a.wait(10)
    """, audio)
    assert out.startswith("audio_device_unavailable")
    assert "tapout" in out


def test_no_devices_is_an_audio_device_error() -> None:
    with pytest.raises(AudioDeviceError, match="no audio output device"):
        resolve_device(None, [])
    dev = OutputDevice(3, "tapout", 128, 44100.0, "ALSA", False)
    assert resolve_device(None, [dev]) is dev
    assert resolve_device("3", [dev]) is dev
    assert resolve_device("TAP", [dev]) is dev
    with pytest.raises(AudioDeviceError):
        resolve_device(7, [dev])


def test_bad_audio_and_regions_are_refused_before_touching_portaudio() -> None:
    a = Audition()
    with pytest.raises(InvalidAudio):
        a.play(np.zeros((1, 100), np.float32))
    with pytest.raises(NonFiniteAudio):
        a.play(np.full((2, 100), np.nan, np.float32))
    with pytest.raises(RegionError):
        a.play(np.zeros((2, 100), np.float32), loop=(50, 200))
    with pytest.raises(RegionError):
        validate_loop((10, 10), 100)
    assert validate_loop((0, 100), 100) == (0, 100)
    assert a.is_playing is False and a.stop() is False
