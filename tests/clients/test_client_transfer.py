"""PCM on the wire: the client's encoder/decoder against the daemon's (bit for bit), and WAV output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clients.python.transfer import decode_pcm, encode_pcm, read_audio_file, write_wav
from daw_bridge.wav import decode_samples, encode_samples
from protocol.errors import InvalidAudio

EDGES = np.array([[-1.0, -0.5, 0.0, 2.0**-23, 0.999999, 1.0, 1.5, -1.5],
                  [0.25, -2.0**-15, -0.75, 0.5, -1.0, 0.1, -0.1, 0.0]], dtype=np.float32)


@pytest.mark.parametrize("fmt", ["pcm16", "pcm24", "float32"])
def test_client_and_daemon_agree_on_every_format(fmt: str) -> None:
    rng = np.random.default_rng(1)
    audio = np.concatenate([EDGES, rng.uniform(-1.2, 1.2, (2, 5000)).astype(np.float32)], axis=1)
    pcm = encode_pcm(audio, fmt)
    assert pcm == encode_samples(audio, fmt)  # the same bytes as the daemon sends
    back = decode_pcm(pcm, 2, fmt)
    np.testing.assert_array_equal(back, decode_samples(pcm, fmt, 2))
    if fmt == "float32":
        np.testing.assert_array_equal(back, audio)
    else:
        bits = 16 if fmt == "pcm16" else 24
        clipped = np.clip(audio, -1.0, 1.0 - 2.0 ** -(bits - 1))
        assert np.abs(back - clipped).max() <= 2.0 ** -bits + 1e-9  # half a quantisation step
        assert back.min() == -1.0  # full scale is 2**(bits-1)


def test_pcm24_sign_extension_of_exact_values() -> None:
    ints = np.array([-(2**23), -1, 0, 1, 2**23 - 1], dtype=np.int64)
    audio = np.stack([ints, ints[::-1]]).astype(np.float64) / 2**23
    back = decode_pcm(encode_pcm(audio.astype(np.float32), "pcm24"), 2, "pcm24")
    got = np.round(back.astype(np.float64) * 2**23).astype(np.int64)
    np.testing.assert_array_equal(got, np.stack([ints, ints[::-1]]))


def test_wav_written_from_a_download_keeps_the_samples(tmp_path: Path) -> None:
    audio = decode_pcm(encode_pcm(EDGES, "pcm24"), 2, "pcm24")
    path = write_wav(tmp_path / "x.wav", audio, 48_000, "pcm24")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 48_000 and sf.info(str(path)).subtype == "PCM_24"
    np.testing.assert_array_equal(data.T, audio)
    mono = tmp_path / "m.wav"
    sf.write(str(mono), EDGES[0].clip(-1, 0.99), 44_100, subtype="FLOAT")
    got, rate = read_audio_file(mono)
    assert rate == 44_100 and got.shape == (1, EDGES.shape[1])
    with pytest.raises(InvalidAudio):
        read_audio_file(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(InvalidAudio):
        read_audio_file(tmp_path / "bad.wav")
