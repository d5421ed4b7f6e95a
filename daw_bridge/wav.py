"""Broadcast WAV (BWF) encoding and a small RIFF reader, written by hand.

soundfile has no ``bext`` API, so the file is assembled here: ``RIFF`` / ``WAVE`` with, in order,
a ``bext`` chunk (EBU Tech 3285 version 1), ``fmt `` (PCM 24-bit, tag 1, or IEEE float 32-bit,
tag 3), ``fact`` (float only, as the WAV spec requires for non-PCM data) and ``data``.

Samples are never normalised or limited: float32 is written bit-exact; 24-bit PCM is
``round(x * 2**23)`` clipped to the integer range (the only clipping PCM itself imposes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from protocol.errors import InvalidAudio, InvalidArgument

BEXT_FIXED_SIZE = 602  # bytes before CodingHistory in a version 1 bext chunk
SUBTYPES = {"pcm24": (1, 24), "float32": (3, 32)}  # name -> (format tag, bits per sample)
PCM_SCALE = {"pcm16": 32768.0, "pcm24": 8388608.0}


@dataclass(frozen=True)
class BextInfo:
    description: str
    originator: str
    originator_reference: str
    origination_date: str  # yyyy-mm-dd
    origination_time: str  # hh:mm:ss
    time_reference: int  # samples since midnight / timeline origin (here: region start sample)
    version: int
    coding_history: str


def _fixed(text: str, size: int) -> bytes:
    """ASCII, truncated to ``size`` bytes and NUL-padded."""
    return text.encode("ascii", "replace")[:size].ljust(size, b"\0")


def build_bext(*, description: str, time_reference: int, originator: str = "Stemforge",
               originator_reference: str = "", when: datetime | None = None,
               coding_history: str = "") -> bytes:
    """The payload of a version 1 ``bext`` chunk (without the chunk header)."""
    if time_reference < 0 or time_reference >= 1 << 64:
        raise InvalidArgument(f"bext TimeReference must fit in 64 bits unsigned, got {time_reference}")
    when = when or datetime.now(timezone.utc)
    body = b"".join([
        _fixed(description, 256),
        _fixed(originator, 32),
        _fixed(originator_reference, 32),
        _fixed(when.strftime("%Y-%m-%d"), 10),
        _fixed(when.strftime("%H:%M:%S"), 8),
        struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32),
        struct.pack("<H", 1),
        b"\0" * 64,  # UMID (none)
        b"\0" * 190,  # reserved (version 1)
    ])
    assert len(body) == BEXT_FIXED_SIZE
    return body + coding_history.encode("ascii", "replace")


def parse_bext(payload: bytes) -> BextInfo:
    if len(payload) < BEXT_FIXED_SIZE:
        raise InvalidAudio(f"bext chunk too short: {len(payload)} bytes")

    def text(a: int, b: int) -> str:
        return payload[a:b].split(b"\0", 1)[0].decode("ascii", "replace")

    low, high = struct.unpack_from("<II", payload, 338)
    (version,) = struct.unpack_from("<H", payload, 346)
    return BextInfo(
        description=text(0, 256), originator=text(256, 288), originator_reference=text(288, 320),
        origination_date=text(320, 330), origination_time=text(330, 338),
        time_reference=low | (high << 32), version=version,
        coding_history=payload[BEXT_FIXED_SIZE:].split(b"\0", 1)[0].decode("ascii", "replace"),
    )


def _chunk(cid: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return cid + struct.pack("<I", len(payload)) + payload + pad


def encode_samples(audio: np.ndarray, subtype: str) -> bytes:
    """(C, N) float32 -> interleaved little-endian sample bytes."""
    inter = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)  # (N, C)
    if subtype == "float32":
        return inter.astype("<f4").tobytes()
    if subtype in PCM_SCALE:
        scale = PCM_SCALE[subtype]
        ints = np.clip(np.round(inter.astype(np.float64) * scale), -scale, scale - 1).astype("<i4")
        if subtype == "pcm16":
            return ints.astype("<i2").tobytes()
        return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    raise InvalidArgument(f"unknown sample format {subtype!r}; known: float32, pcm16, pcm24")


def decode_samples(payload: bytes, sample_format: str, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM -> (C, N) float32 (the inverse of :func:`encode_samples`)."""
    width = {"float32": 4, "pcm24": 3, "pcm16": 2}.get(sample_format)
    if width is not None and len(payload) % (width * max(channels, 1)):
        raise InvalidAudio(f"{len(payload)} bytes of {sample_format} are not a whole number of "
                           f"{channels}-channel frames")
    if sample_format == "float32":
        flat = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    elif sample_format == "pcm16":
        flat = np.frombuffer(payload, dtype="<i2").astype(np.float32) / PCM_SCALE["pcm16"]
    elif sample_format == "pcm24":
        raw = np.frombuffer(payload, dtype=np.uint8)
        b = raw.reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        flat = ints.astype(np.float32) / PCM_SCALE["pcm24"]
    else:
        raise InvalidArgument(f"unknown sample format {sample_format!r}; known: float32, pcm16, pcm24")
    if channels < 1 or flat.size % channels:
        raise InvalidAudio(f"{flat.size} samples do not divide into {channels} channels")
    return np.ascontiguousarray(flat.reshape(-1, channels).T)


def build_bwf(audio: np.ndarray, sample_rate: int, *, subtype: str = "pcm24", description: str = "",
              time_reference: int = 0, originator_reference: str = "", when: datetime | None = None) -> bytes:
    """The complete bytes of a Broadcast WAV file holding ``audio`` ((C, N) float32)."""
    if audio.ndim != 2:
        raise InvalidAudio(f"audio must be (channels, samples), got shape {audio.shape}")
    if subtype not in SUBTYPES:
        raise InvalidArgument(f"unknown output format {subtype!r}; known: {sorted(SUBTYPES)}")
    tag, bits = SUBTYPES[subtype]
    channels, frames = int(audio.shape[0]), int(audio.shape[1])
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block_align, block_align, bits)
    if tag != 1:
        fmt += struct.pack("<H", 0)  # cbSize for non-PCM formats
    history = f"A={'PCM' if tag == 1 else 'PCM_FLOAT'},F={sample_rate},W={bits},M=stereo,T=Stemforge\r\n"
    if channels != 2:
        history = history.replace("M=stereo", "M=mono" if channels == 1 else f"M={channels}ch")
    chunks = [
        _chunk(b"bext", build_bext(description=description, time_reference=time_reference,
                                   originator_reference=originator_reference, when=when,
                                   coding_history=history)),
        _chunk(b"fmt ", fmt),
    ]
    if tag != 1:
        chunks.append(_chunk(b"fact", struct.pack("<I", frames)))
    chunks.append(_chunk(b"data", encode_samples(audio, subtype)))
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class RiffChunk:
    id: str
    offset: int  # offset of the payload in the file
    size: int  # payload size (without padding)


def read_chunks(data: bytes) -> list[RiffChunk]:
    """List the chunks of a RIFF/WAVE file; raises :class:`InvalidAudio` on a malformed file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudio("not a RIFF/WAVE file")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 != len(data):
        raise InvalidAudio(f"RIFF size {riff_size + 8} does not match the file size {len(data)}")
    out, pos = [], 12
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4].decode("ascii", "replace")
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 8 + size > len(data):
            raise InvalidAudio(f"chunk {cid!r} at {pos} runs past the end of the file")
        out.append(RiffChunk(cid, pos + 8, size))
        pos += 8 + size + (size & 1)
    if pos != len(data):
        raise InvalidAudio(f"{len(data) - pos} trailing bytes after the last chunk")
    return out


def read_bext(path: str | Path) -> BextInfo:
    data = Path(path).read_bytes()
    for ch in read_chunks(data):
        if ch.id == "bext":
            return parse_bext(data[ch.offset:ch.offset + ch.size])
    raise InvalidAudio(f"{Path(path).name} has no bext chunk")


__all__ = ["BextInfo", "RiffChunk", "build_bext", "parse_bext", "build_bwf", "encode_samples", "decode_samples", "read_chunks",
           "read_bext", "SUBTYPES"]
