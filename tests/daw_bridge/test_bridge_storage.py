"""Atomic writes, DAW naming, BWF bext chunk and recall manifests of takes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daw_bridge.storage import Storage, atomic_write_bytes, new_token, take_file_name
from daw_bridge.wav import read_bext, read_chunks
from protocol.errors import InvalidArgument, InvalidAudio


def _audio(frames: int, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, size=(2, frames)) * scale).astype(np.float32)


def test_take_file_name() -> None:
    assert take_file_name("My Song", "bass", 120.0, 3) == "My-Song_bass_120bpm_take3.wav"
    assert take_file_name("a/b", "drums", 92.5, 1) == "a-b_drums_92.5bpm_take1.wav"


@pytest.mark.parametrize("fmt", ["pcm24", "float32"])
def test_write_take_bwf_and_soundfile(tmp_path: Path, fmt: str) -> None:
    st = Storage(tmp_path)
    audio = _audio(24_001, scale=1.5)  # past full scale: must not be normalised
    start = (1 << 32) + 12_345  # needs both TimeReference words
    wt = st.write_take(session_id="s1", session_name="demo", stem="bass", bpm=120, number=1, audio=audio,
                       start_sample=start, manifest={"prompt": "deep bass", "seed": 7, "model_hash": "abc"},
                       fmt=fmt)
    assert wt.path.name == "demo_bass_120bpm_take1.wav"
    data = wt.path.read_bytes()
    chunks = read_chunks(data)
    assert [c.id for c in chunks][:2] == ["bext", "fmt "] and chunks[-1].id == "data"
    bext = read_bext(wt.path)
    assert bext.time_reference == start
    assert bext.originator == "Stemforge" and bext.version == 1
    assert len(bext.origination_date) == 10 and len(bext.origination_time) == 8
    assert "deep bass" in bext.description
    info = sf.info(str(wt.path))
    assert (info.samplerate, info.channels, info.frames) == (48_000, 2, 24_001)
    assert info.subtype == ("PCM_24" if fmt == "pcm24" else "FLOAT")
    back, _ = sf.read(str(wt.path), dtype="float32", always_2d=True)
    if fmt == "float32":
        np.testing.assert_array_equal(back.T, audio)  # bit exact, including |x| > 1
    else:
        ref = np.clip(np.round(audio.astype(np.float64) * 2**23), -2**23, 2**23 - 1) / 2**23
        np.testing.assert_allclose(back.T, ref, atol=1e-7)
        inside = np.abs(audio) < 0.99
        np.testing.assert_allclose(back.T[inside], audio[inside], atol=1.0 / 2**23)
    man = json.loads(wt.manifest_path.read_text())
    assert man["prompt"] == "deep bass" and man["seed"] == 7 and man["frames"] == 24_001
    assert man["start_sample"] == start and man["sha256"] == wt.sha256


def test_take_numbers_never_overwrite(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    a = st.write_take(session_id="s", session_name="x", stem="drums", bpm=90, number=1, audio=_audio(10),
                      start_sample=0, manifest={})
    b = st.write_take(session_id="s", session_name="x", stem="drums", bpm=90, number=1, audio=_audio(10, 1),
                      start_sample=0, manifest={})
    assert (a.number, b.number) == (1, 2) and a.path != b.path and a.path.exists()


def test_bad_takes_refused(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    bad = _audio(10)
    bad[0, 3] = np.nan
    with pytest.raises(InvalidAudio):
        st.write_take(session_id="s", session_name="x", stem="b", bpm=90, number=1, audio=bad, start_sample=0,
                      manifest={})
    with pytest.raises(InvalidArgument):
        st.session_dir("../etc")
    assert not list((tmp_path / "sessions").rglob("*.wav"))


def test_token_created_once_with_0600(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    tok = st.load_or_create_token()
    assert len(tok) >= 32
    assert stat.S_IMODE(os.stat(st.token_path).st_mode) == 0o600
    assert Storage(tmp_path).load_or_create_token() == tok


def test_new_token_never_starts_with_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # token_urlsafe's alphabet includes "-": a token like "-x..." after "--token" would be read as an option
    draws = iter(["-dashfirst-0123456789abcdef", "-again", "ok-token-0123456789abcdef"])
    monkeypatch.setattr("daw_bridge.storage.secrets.token_urlsafe", lambda n: next(draws))
    assert new_token(16) == "ok-token-0123456789abcdef"


def test_bench_daemon_command_passes_a_dash_token_to_serve(tmp_path: Path) -> None:
    from daw_bridge.bench import DaemonProcess
    from daw_bridge.cli import build_parser

    d = DaemonProcess(tmp_path / "data", token="-starts-with-a-dash-0123")
    args = build_parser().parse_args(d.cmd[3:])  # drop "python -m daw_bridge.cli"
    assert args.command == "serve" and args.token == "-starts-with-a-dash-0123"
    assert args.data_dir == tmp_path / "data"


def test_atomic_write_killed_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    """SIGKILL a real process while it writes: the final name must not exist (old content kept)."""
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import os, time
        from daw_bridge import storage
        real_write = os.write
        calls = []
        def slow_write(fd, buf):
            if calls:
                open({str(ready)!r}, "w").close()
                time.sleep(60)
            calls.append(1)
            return real_write(fd, bytes(buf[:1000]))
        storage.os.write = slow_write
        storage.atomic_write_bytes({str(target)!r}, b"x" * 100_000)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            import time
            time.sleep(0.05)
        assert ready.exists(), "child never reached the middle of the write"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert target.read_bytes() == b"old"
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].stat().st_size == 1000  # the partial data only ever lived in the temp
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert Storage(tmp_path).remove_stale_temp_files() == 1  # what the daemon does at start-up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "ready", "sessions"]


def test_default_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from daw_bridge.storage import default_data_dir

    monkeypatch.setenv("STEMFORGE_DATA_DIR", str(tmp_path / "sf"))
    assert default_data_dir() == tmp_path / "sf"
    monkeypatch.delenv("STEMFORGE_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "stemforge"


@pytest.mark.parametrize("fmt,tol", [("float32", 0.0), ("pcm24", 1.0 / 2**23), ("pcm16", 1.0 / 2**15)])
def test_pcm_encode_decode_round_trip(fmt: str, tol: float) -> None:
    from daw_bridge.wav import decode_samples, encode_samples

    audio = _audio(1001, seed=4, scale=0.9)
    audio[0, 0], audio[1, 0] = -1.0, 1.0  # full scale: -1 exact, +1 clips to the largest code
    data = encode_samples(audio, fmt)
    assert len(data) == 1001 * 2 * {"float32": 4, "pcm24": 3, "pcm16": 2}[fmt]
    back = decode_samples(data, fmt, 2)
    assert back.shape == (2, 1001) and back.dtype == np.float32
    np.testing.assert_allclose(back, audio, atol=tol)
    assert back[0, 0] == -1.0
    with pytest.raises(InvalidAudio):
        decode_samples(data[:-1], fmt, 2)
