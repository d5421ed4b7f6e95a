"""Binary audio frames: exact layout, round trips, corruption detection, chunk reassembly."""

from __future__ import annotations

import array
import hashlib
import struct
import sys
import zlib

import pytest

from protocol.binary import (
    HEADER_SIZE,
    AudioFrame,
    ChunkAssembler,
    FrameKind,
    chunk_count,
    decode_frame,
    encode_frame,
    split_pcm,
)
from protocol.errors import InvalidArgument, MalformedMessage, MessageTooLarge, UnsupportedVersion


def float_pcm(frames: int) -> bytes:
    """Interleaved stereo float32 little-endian: L = i / frames, R = -i / frames."""
    values = array.array("f", [v for i in range(frames) for v in (i / frames, -i / frames)])
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def frame(**kw: object) -> AudioFrame:
    base = dict(kind=FrameKind.UPLOAD, transfer_id=17, chunk_index=2, total_chunks=5, sample_rate=48_000,
                channels=2, sample_format="float32", frames=3, payload=float_pcm(3))
    base.update(kw)
    return AudioFrame(**base)  # type: ignore[arg-type]


def test_literal_header_layout() -> None:
    f = frame()
    data = encode_frame(f)
    assert HEADER_SIZE == 32 and len(data) == 32 + 3 * 2 * 4
    assert data[:4] == b"SFAU"
    assert data[4:8] == bytes([1, 1, 3, 2])  # version, kind upload, float32, stereo
    assert struct.unpack("<IIIII", data[8:28]) == (17, 2, 5, 48_000, 3)
    assert struct.unpack("<I", data[28:32])[0] == zlib.crc32(data[:28] + data[32:])
    assert data[32:] == float_pcm(3)
    # the first sample pair (0.0, -0.0) and then (1/3, -1/3) as float32 LE
    assert struct.unpack("<6f", data[32:])[2] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("fmt", "width"), [("pcm16", 2), ("pcm24", 3), ("float32", 4)])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", list(FrameKind))
def test_round_trip(fmt: str, width: int, channels: int, kind: FrameKind) -> None:
    payload = bytes(range(256))[: 5 * channels * width]
    f = frame(kind=kind, sample_format=fmt, channels=channels, frames=5, payload=payload, total_chunks=0,
              chunk_index=9, transfer_id=0xFFFF_FFFF, sample_rate=44_100)
    back = decode_frame(encode_frame(f))
    assert back == f


def test_every_flipped_byte_is_detected() -> None:
    data = encode_frame(frame())
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises((MalformedMessage, UnsupportedVersion)):
            decode_frame(bytes(bad))


def test_truncated_and_extended() -> None:
    data = encode_frame(frame())
    with pytest.raises(MalformedMessage, match="shorter than"):
        decode_frame(data[:20])
    with pytest.raises(MalformedMessage, match="checksum"):
        decode_frame(data[:-4])
    with pytest.raises(MalformedMessage, match="checksum"):
        decode_frame(data + b"\0\0\0\0")


def _with_header(**fields: int) -> bytes:
    """A frame with chosen header fields and a correct CRC, to reach the checks after the CRC."""
    h = dict(magic=b"SFAU", version=1, kind=1, fmt=3, channels=2, tid=1, index=0, total=1, sr=48_000, frames=1)
    h.update(fields)
    payload = b"\0" * 8
    head = struct.pack("<4sBBBBIIIII", h["magic"], h["version"], h["kind"], h["fmt"], h["channels"], h["tid"],
                       h["index"], h["total"], h["sr"], h["frames"])
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def test_header_checks_after_crc() -> None:
    assert decode_frame(_with_header()).frames == 1
    with pytest.raises(MalformedMessage, match="magic"):
        decode_frame(_with_header(magic=b"RIFF"))
    with pytest.raises(UnsupportedVersion):
        decode_frame(_with_header(version=2))
    with pytest.raises(InvalidArgument, match="kind"):
        decode_frame(_with_header(kind=9))
    with pytest.raises(InvalidArgument, match="sample format"):
        decode_frame(_with_header(fmt=7))
    with pytest.raises(InvalidArgument, match="channels"):
        decode_frame(_with_header(channels=6))
    with pytest.raises(InvalidArgument, match="past total_chunks"):
        decode_frame(_with_header(index=1, total=1))
    with pytest.raises(MalformedMessage, match="announces 16"):
        decode_frame(_with_header(frames=2))
    with pytest.raises(InvalidArgument, match="at least one"):
        decode_frame(_with_header(frames=0))


def test_size_limit() -> None:
    data = encode_frame(frame(frames=1000, payload=float_pcm(1000), chunk_index=0, total_chunks=1))
    assert decode_frame(data, max_bytes=len(data)).frames == 1000
    with pytest.raises(MessageTooLarge):
        decode_frame(data, max_bytes=len(data) - 1)


def test_constructor_checks() -> None:
    with pytest.raises(InvalidArgument, match="payload"):
        frame(payload=b"\0" * 7)
    with pytest.raises(InvalidArgument, match="sample format"):
        frame(sample_format="pcm8")
    with pytest.raises(InvalidArgument, match="32-bit"):
        frame(transfer_id=1 << 32)


def test_split_and_assemble_exactly() -> None:
    pcm = float_pcm(10_000)
    chunks = list(split_pcm(pcm, kind=FrameKind.UPLOAD, transfer_id=3, sample_rate=48_000, channels=2,
                            sample_format="float32", chunk_frames=4096))
    assert [c.frames for c in chunks] == [4096, 4096, 1808]
    assert chunk_count(10_000, 4096) == 3 and {c.total_chunks for c in chunks} == {3}
    asm = ChunkAssembler(transfer_id=3, kind=FrameKind.UPLOAD, frames=10_000, total_chunks=3, sample_rate=48_000,
                         channels=2, sample_format="float32", sha256=hashlib.sha256(pcm).hexdigest())
    for c in chunks:
        assert not asm.complete
        asm.add(decode_frame(encode_frame(c)))
    assert asm.complete
    assert asm.finish() == pcm


def _assembler(sha: str | None = None) -> ChunkAssembler:
    return ChunkAssembler(transfer_id=3, kind=FrameKind.UPLOAD, frames=10, total_chunks=2, sample_rate=48_000,
                          channels=2, sample_format="float32", sha256=sha)


def test_assembler_refusals() -> None:
    chunks = list(split_pcm(float_pcm(10), kind=FrameKind.UPLOAD, transfer_id=3, sample_rate=48_000, channels=2,
                            sample_format="float32", chunk_frames=5))
    with pytest.raises(InvalidArgument, match="expected chunk 0"):
        _assembler().add(chunks[1])
    asm = _assembler()
    asm.add(chunks[0])
    with pytest.raises(InvalidArgument, match="expected chunk 1"):
        asm.add(chunks[0])  # duplicate
    with pytest.raises(InvalidArgument, match="incomplete"):
        asm.finish()
    with pytest.raises(InvalidArgument, match="transfer 4"):
        _assembler().add(frame(transfer_id=4, chunk_index=0, total_chunks=2))
    with pytest.raises(InvalidArgument, match="sample_rate"):
        _assembler().add(frame(transfer_id=3, chunk_index=0, total_chunks=2, sample_rate=44_100))
    with pytest.raises(InvalidArgument, match="kind"):
        _assembler().add(frame(transfer_id=3, chunk_index=0, total_chunks=2, kind=FrameKind.DOWNLOAD))
    with pytest.raises(InvalidArgument, match="11 frames received"):
        _assembler().add(frame(transfer_id=3, chunk_index=0, total_chunks=2, frames=11, payload=float_pcm(11)))
    bad = _assembler(sha="0" * 64)
    for c in chunks:
        bad.add(c)
    with pytest.raises(InvalidArgument, match="sha256"):
        bad.finish()
    with pytest.raises(InvalidArgument, match="whole number"):
        list(split_pcm(b"\0" * 7, kind=FrameKind.UPLOAD, transfer_id=1, sample_rate=48_000, channels=2,
                       sample_format="float32", chunk_frames=4))
