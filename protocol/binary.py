"""Binary WebSocket frames carrying audio: a fixed 32-byte header followed by interleaved PCM.

Layout (all integers little-endian; ``struct`` format ``<4sBBBBIIIIII``)::

    offset size field         meaning
    0      4    magic         b"SFAU"
    4      1    version       1
    5      1    kind          1 upload (client -> daemon), 2 download, 3 stream (audition), 4 preview
    6      1    sample_format 1 pcm16 (int16), 2 pcm24 (3-byte signed int), 3 float32 (IEEE 754)
    7      1    channels      1 or 2
    8      4    transfer_id   from upload.ready / download.begin / audition.started / job.preview
    12     4    chunk_index   0-based
    16     4    total_chunks  number of chunks of the transfer (0 = open-ended stream)
    20     4    sample_rate   Hz
    24     4    frames        frames in this chunk (>= 1)
    28     4    crc32         zlib.crc32 of bytes 0..27 followed by the payload
    32     ...  payload       frames * channels * bytes_per_sample bytes, interleaved (L R L R ...),
                              little-endian; float32 in [-1, 1] full scale, PCM full scale 2**(bits-1)

Decoding refuses (codes in brackets): a frame over the size limit [message_too_large]; a short
frame, a wrong magic, a CRC mismatch or a payload length that does not match the header
[malformed_message]; another version [unsupported_version]; unknown kind, sample format or
channel count, zero frames, or a chunk index past the total [invalid_argument].

:class:`ChunkAssembler` collects the chunks of one transfer in order and checks they agree.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from protocol.errors import InvalidArgument, MalformedMessage, MessageTooLarge, UnsupportedVersion

MAGIC = b"SFAU"
VERSION = 1
HEADER = struct.Struct("<4sBBBBIIIIII")
HEADER_SIZE = HEADER.size  # 32
MAX_FRAME_BYTES = 4 << 20  # default limit of one binary frame, header included
_U32 = 0xFFFF_FFFF


class FrameKind(IntEnum):
    UPLOAD = 1
    DOWNLOAD = 2
    STREAM = 3
    PREVIEW = 4


#: wire name -> (code, bytes per sample)
SAMPLE_FORMATS: dict[str, tuple[int, int]] = {"pcm16": (1, 2), "pcm24": (2, 3), "float32": (3, 4)}
_FORMAT_BY_CODE = {code: name for name, (code, _) in SAMPLE_FORMATS.items()}


def bytes_per_sample(sample_format: str) -> int:
    try:
        return SAMPLE_FORMATS[sample_format][1]
    except KeyError:
        raise InvalidArgument(f"unknown sample format {sample_format!r} (known: {', '.join(SAMPLE_FORMATS)})",
                              field="sample_format") from None


def chunk_count(frames: int, chunk_frames: int) -> int:
    """Chunks needed for ``frames`` at most ``chunk_frames`` each (ceil division)."""
    if frames < 1 or chunk_frames < 1:
        raise InvalidArgument(f"frames ({frames}) and chunk_frames ({chunk_frames}) must be >= 1")
    return -(-frames // chunk_frames)


@dataclass(frozen=True, kw_only=True)
class AudioFrame:
    kind: FrameKind
    transfer_id: int
    chunk_index: int
    total_chunks: int  # 0 = open-ended stream
    sample_rate: int
    channels: int
    sample_format: str  # "pcm16" | "pcm24" | "float32"
    frames: int
    payload: bytes  # interleaved little-endian PCM

    def __post_init__(self) -> None:
        _validate(self.kind, self.transfer_id, self.chunk_index, self.total_chunks, self.sample_rate,
                  self.channels, self.sample_format, self.frames)
        expected = self.frames * self.channels * bytes_per_sample(self.sample_format)
        if len(self.payload) != expected:
            raise InvalidArgument(f"payload has {len(self.payload)} bytes, expected {expected} "
                                  f"({self.frames} frames x {self.channels} ch x {self.sample_format})",
                                  field="payload")


def _validate(kind: int, transfer_id: int, chunk_index: int, total_chunks: int, sample_rate: int, channels: int,
              sample_format: str, frames: int) -> None:
    if kind not in {k.value for k in FrameKind}:
        raise InvalidArgument(f"unknown binary frame kind {kind} (1 upload, 2 download, 3 stream, 4 preview)",
                              field="kind")
    bytes_per_sample(sample_format)
    if channels not in (1, 2):
        raise InvalidArgument(f"channels must be 1 or 2, got {channels}", field="channels")
    for name, value in (("transfer_id", transfer_id), ("chunk_index", chunk_index), ("total_chunks", total_chunks),
                        ("sample_rate", sample_rate), ("frames", frames)):
        if not 0 <= value <= _U32:
            raise InvalidArgument(f"{name} must fit in an unsigned 32-bit integer, got {value}", field=name)
    if frames < 1:
        raise InvalidArgument("a binary frame must carry at least one audio frame", field="frames")
    if sample_rate < 1:
        raise InvalidArgument("sample_rate must be >= 1", field="sample_rate")
    if total_chunks and chunk_index >= total_chunks:
        raise InvalidArgument(f"chunk_index {chunk_index} is past total_chunks {total_chunks}", field="chunk_index")


def encode_frame(frame: AudioFrame) -> bytes:
    head = HEADER.pack(MAGIC, VERSION, int(frame.kind), SAMPLE_FORMATS[frame.sample_format][0], frame.channels,
                       frame.transfer_id, frame.chunk_index, frame.total_chunks, frame.sample_rate, frame.frames, 0)
    crc = zlib.crc32(frame.payload, zlib.crc32(head[:28]))
    return head[:28] + struct.pack("<I", crc) + frame.payload


def decode_frame(data: bytes | bytearray | memoryview, max_bytes: int = MAX_FRAME_BYTES) -> AudioFrame:
    """Parse and verify one binary frame (see the module docstring for what is refused)."""
    data = bytes(data)
    if len(data) > max_bytes:
        raise MessageTooLarge(f"binary frame of {len(data)} bytes exceeds the limit of {max_bytes} bytes",
                              size=len(data), limit=max_bytes)
    if len(data) < HEADER_SIZE:
        raise MalformedMessage(f"binary frame of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    (magic, version, kind, fmt_code, channels, transfer_id, chunk_index, total_chunks, sample_rate, frames,
     crc) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedMessage(f"binary frame magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise UnsupportedVersion(f"binary frame version {version} is not supported (this side speaks {VERSION})",
                                 supported=[VERSION])
    if zlib.crc32(data[HEADER_SIZE:], zlib.crc32(data[:28])) != crc:
        raise MalformedMessage(f"binary frame checksum mismatch (transfer {transfer_id}, chunk {chunk_index}): "
                               "the frame is corrupt")
    fmt = _FORMAT_BY_CODE.get(fmt_code)
    if fmt is None:
        raise InvalidArgument(f"unknown sample format code {fmt_code} (1 pcm16, 2 pcm24, 3 float32)",
                              field="sample_format")
    _validate(kind, transfer_id, chunk_index, total_chunks, sample_rate, channels, fmt, frames)
    payload = data[HEADER_SIZE:]
    expected = frames * channels * SAMPLE_FORMATS[fmt][1]
    if len(payload) != expected:
        raise MalformedMessage(f"binary frame payload has {len(payload)} bytes, the header announces {expected}")
    return AudioFrame(kind=FrameKind(kind), transfer_id=transfer_id, chunk_index=chunk_index,
                      total_chunks=total_chunks, sample_rate=sample_rate, channels=channels, sample_format=fmt,
                      frames=frames, payload=payload)


def split_pcm(pcm: bytes, *, kind: FrameKind, transfer_id: int, sample_rate: int, channels: int,
              sample_format: str, chunk_frames: int) -> Iterator[AudioFrame]:
    """Cut a whole interleaved PCM buffer into frames of at most ``chunk_frames`` (the last may be shorter)."""
    frame_bytes = channels * bytes_per_sample(sample_format)
    if len(pcm) % frame_bytes or not pcm:
        raise InvalidArgument(f"PCM buffer of {len(pcm)} bytes is not a positive whole number of "
                              f"{frame_bytes}-byte frames", field="payload")
    total_frames = len(pcm) // frame_bytes
    total = chunk_count(total_frames, chunk_frames)
    for index in range(total):
        lo = index * chunk_frames
        hi = min(total_frames, lo + chunk_frames)
        yield AudioFrame(kind=kind, transfer_id=transfer_id, chunk_index=index, total_chunks=total,
                         sample_rate=sample_rate, channels=channels, sample_format=sample_format, frames=hi - lo,
                         payload=pcm[lo * frame_bytes: hi * frame_bytes])


class ChunkAssembler:
    """Collects the chunks of one transfer, in order, and checks each against what was announced.

    ``add`` raises :class:`InvalidArgument` for a chunk of another transfer, out of order or
    duplicated, with another format, or carrying more frames than announced. ``finish`` returns
    the payload and raises when chunks or frames are missing or the sha256 does not match.
    """

    def __init__(self, *, transfer_id: int, kind: FrameKind, frames: int, total_chunks: int, sample_rate: int,
                 channels: int, sample_format: str, sha256: str | None = None) -> None:
        self.transfer_id, self.kind, self.frames, self.total_chunks = transfer_id, kind, frames, total_chunks
        self.sample_rate, self.channels, self.sample_format, self.sha256 = sample_rate, channels, sample_format, sha256
        self.received_frames = 0
        self.next_index = 0
        self._parts: list[bytes] = []
        self._hash = hashlib.sha256()

    def add(self, frame: AudioFrame) -> None:
        tid = self.transfer_id
        if frame.transfer_id != tid:
            raise InvalidArgument(f"chunk of transfer {frame.transfer_id} sent to transfer {tid}", field="transfer_id")
        if frame.kind != self.kind:
            raise InvalidArgument(f"transfer {tid}: chunk kind {frame.kind.name.lower()}, expected "
                                  f"{self.kind.name.lower()}", field="kind")
        if frame.chunk_index != self.next_index:
            raise InvalidArgument(f"transfer {tid}: chunk {frame.chunk_index} arrived, expected chunk "
                                  f"{self.next_index}", field="chunk_index")
        if frame.total_chunks != self.total_chunks:
            raise InvalidArgument(f"transfer {tid}: total_chunks {frame.total_chunks}, announced "
                                  f"{self.total_chunks}", field="total_chunks")
        for name in ("sample_rate", "channels", "sample_format"):
            if getattr(frame, name) != getattr(self, name):
                raise InvalidArgument(f"transfer {tid}: chunk {name} {getattr(frame, name)!r}, announced "
                                      f"{getattr(self, name)!r}", field=name)
        if self.received_frames + frame.frames > self.frames:
            raise InvalidArgument(f"transfer {tid}: {self.received_frames + frame.frames} frames received, "
                                  f"announced {self.frames}", field="frames")
        self._parts.append(frame.payload)
        self._hash.update(frame.payload)
        self.received_frames += frame.frames
        self.next_index += 1

    @property
    def complete(self) -> bool:
        return self.next_index == self.total_chunks and self.received_frames == self.frames

    def finish(self) -> bytes:
        tid = self.transfer_id
        if not self.complete:
            raise InvalidArgument(f"transfer {tid} incomplete: {self.next_index}/{self.total_chunks} chunks, "
                                  f"{self.received_frames}/{self.frames} frames", field="frames")
        if self.sha256 is not None and self._hash.hexdigest() != self.sha256.lower():
            raise InvalidArgument(f"transfer {tid}: sha256 of the received PCM is {self._hash.hexdigest()}, "
                                  f"announced {self.sha256}", field="sha256")
        return b"".join(self._parts)
