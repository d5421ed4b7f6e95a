"""Chunked audio upload and download over binary frames (:mod:`protocol.binary`), mixed into the client.

Download: ``download`` -> ``download.begin`` (transfer id, frames, chunks, sha256) -> binary frames of
kind download (CRC-checked, assembled in order by :class:`protocol.binary.ChunkAssembler`) ->
``download.end``. The announced sha256 is checked against the PCM received (sha256 of the payload
bytes in chunk order, as for uploads); when it is the digest of the take's WAV file instead, it is
checked against that file when the daemon's host path is readable here (a daemon on this machine),
together with the samples. A mismatch raises :class:`protocol.errors.InvalidAudio`.

Upload: ``upload.begin`` (frames, chunks, sha256 of the PCM) -> ``upload.ready`` (transfer id) ->
binary frames of kind upload -> ``upload.end`` -> ``upload.done`` (the new take).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from protocol import messages as m
from protocol.binary import (
    HEADER_SIZE,
    MAX_FRAME_BYTES,
    AudioFrame,
    ChunkAssembler,
    FrameKind,
    bytes_per_sample,
    chunk_count,
    decode_frame,
    encode_frame,
    split_pcm,
)
from protocol.errors import InvalidArgument, InvalidAudio, StemforgeError
from protocol.records import SAMPLE_RATE, SampleFormat

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], Any]  # (frames done, frames total)
_SUBTYPES = {"float32": "FLOAT", "pcm24": "PCM_24", "pcm16": "PCM_16"}


# ---- PCM <-> float32 ----------------------------------------------------------------------------
def encode_pcm(audio: np.ndarray, sample_format: str) -> bytes:
    """(C, N) float -> interleaved little-endian PCM (integer formats clip at full scale)."""
    frames = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)  # (N, C)
    if sample_format == "float32":
        return frames.astype("<f4").tobytes()
    bits = 8 * bytes_per_sample(sample_format)
    scale = float(2 ** (bits - 1))
    ints = np.clip(np.round(frames.astype(np.float64) * scale), -scale, scale - 1).astype("<i4")
    if sample_format == "pcm16":
        return ints.astype("<i2").tobytes()
    return ints.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()  # low 3 bytes of each little-endian int32


def decode_pcm(pcm: bytes, channels: int, sample_format: str) -> np.ndarray:
    """Interleaved little-endian PCM -> float32 (C, N)."""
    if sample_format == "float32":
        flat = np.frombuffer(pcm, dtype="<f4").astype(np.float32)
    elif sample_format == "pcm16":
        flat = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    else:
        b = np.frombuffer(pcm, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        flat = ints.astype(np.float32) / float(1 << 23)
    return np.ascontiguousarray(flat.reshape(-1, channels).T)


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    """A file libsndfile reads -> float32 (C, N) at its own rate (the daemon resamples)."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise InvalidAudio(f"audio file not found: {p}", path=str(p))
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InvalidAudio(f"cannot read {p.name}: {exc}", path=str(p)) from None
    if data.shape[1] not in (1, 2):
        raise InvalidAudio(f"{p.name} has {data.shape[1]} channels; upload mono or stereo", path=str(p))
    return np.ascontiguousarray(data.T), int(sr)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Download:
    take_id: str
    audio: np.ndarray  # (channels, frames) float32 at sample_rate
    sample_rate: int
    sample_format: SampleFormat
    frames: int
    sha256: str  # as announced by the daemon
    pcm_sha256: str  # of the PCM received
    verified: bool  # the announced sha256 matched (PCM, or the take's WAV file on this host)
    path: Path | None = None  # where it was written, when asked


@dataclass
class _Transfer:
    request_id: int | str | None
    begin: m.DownloadBegin
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class TransferMixin:
    """Upload/download for :class:`clients.python.client.StemforgeClient` (uses its ``request``)."""

    _transfers: dict[int, _Transfer]
    _binary_listeners: set[asyncio.Queue[AudioFrame]]
    request: Callable[..., Any]
    _ensure_connected: Callable[..., Any]
    request_timeout: float

    def _init_transfers(self) -> None:
        self._transfers = {}
        self._binary_listeners = set()
        self._take_paths: dict[str, str] = {}

    def subscribe_audio(self) -> asyncio.Queue[AudioFrame]:
        """A queue of stream/preview audio frames (audition to this client, job previews)."""
        q: asyncio.Queue[AudioFrame] = asyncio.Queue()
        self._binary_listeners.add(q)
        return q

    # called by the reader task ------------------------------------------------------------------
    def _open_transfer(self, msg: m.Message) -> None:
        if isinstance(msg, m.DownloadBegin):
            self._transfers[msg.transfer_id] = _Transfer(msg.id, msg)

    def _route_transfer(self, msg: m.Message) -> bool:
        if isinstance(msg, m.DownloadEnd):
            t = self._transfers.get(msg.transfer_id)
            if t is not None:
                t.queue.put_nowait(msg)
                return True
        elif isinstance(msg, m.Error) and msg.id is not None:
            for t in self._transfers.values():
                if t.request_id == msg.id:
                    t.queue.put_nowait(msg.to_exception())
                    return True
        return False

    def _on_binary(self, data: bytes) -> None:
        try:
            frame = decode_frame(data, max_bytes=max(MAX_FRAME_BYTES, len(data)))
        except StemforgeError as exc:
            logger.warning("dropping a corrupt binary frame from the daemon: %s", exc.message)
            for t in self._transfers.values():  # a download cannot complete without this chunk
                t.queue.put_nowait(exc)
            return
        if frame.kind == FrameKind.DOWNLOAD:
            transfer = self._transfers.get(frame.transfer_id)
            if transfer is not None:
                transfer.queue.put_nowait(frame)
            else:
                logger.debug("binary frame for unknown transfer %d", frame.transfer_id)
            return
        for q in list(self._binary_listeners):
            q.put_nowait(frame)

    def _fail_transfers(self, exc: StemforgeError) -> None:
        for t in self._transfers.values():
            t.queue.put_nowait(exc)

    # public ---------------------------------------------------------------------------------------
    async def download(self, take_id: str, sample_format: SampleFormat = "float32", chunk_frames: int = SAMPLE_RATE,
                       path: str | Path | None = None, on_progress: Progress | None = None,
                       timeout: float | None = None, verify: bool = True) -> Download:
        """Fetch a take's audio; checks CRC per chunk, frame counts and (``verify``) the sha256.
        Optionally writes a WAV. A download cut by a lost connection is started again once."""
        from clients.python.connection import ConnectionLost

        args = (take_id, sample_format, chunk_frames, path, on_progress, timeout, verify)
        try:
            return await self._download_once(*args)
        except ConnectionLost:
            if not getattr(self, "reconnect", False):
                raise
            logger.info("download of %s interrupted by a lost connection; retrying once", take_id)
            return await self._download_once(*args)

    async def _download_once(self, take_id: str, sample_format: SampleFormat, chunk_frames: int,
                             path: str | Path | None, on_progress: Progress | None,
                             timeout: float | None, verify: bool) -> Download:
        begin = await self.request(m.Download(take_id=take_id, sample_format=sample_format,
                                              chunk_frames=chunk_frames))
        transfer = self._transfers[begin.transfer_id]
        asm = ChunkAssembler(transfer_id=begin.transfer_id, kind=FrameKind.DOWNLOAD, frames=begin.frames,
                             total_chunks=begin.total_chunks, sample_rate=begin.sample_rate,
                             channels=begin.channels, sample_format=begin.sample_format)
        wait = timeout or self.request_timeout
        try:
            while True:
                item = await asyncio.wait_for(transfer.queue.get(), wait)
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, m.DownloadEnd):
                    break
                asm.add(item)
                if on_progress is not None:
                    on_progress(asm.received_frames, begin.frames)
        except TimeoutError:
            from clients.python.client import RequestTimeout

            raise RequestTimeout(f"download of {take_id} stalled: no chunk within {wait} s") from None
        finally:
            self._transfers.pop(begin.transfer_id, None)
        if item.frames != begin.frames or item.chunks != begin.total_chunks:
            raise InvalidAudio(f"download of {take_id}: download.end reports {item.frames} frames in {item.chunks} "
                               f"chunks, download.begin announced {begin.frames} in {begin.total_chunks}")
        pcm = asm.finish()
        audio = decode_pcm(pcm, begin.channels, begin.sample_format)
        pcm_sha = hashlib.sha256(pcm).hexdigest()
        verified = await self._verify(take_id, begin, pcm_sha, audio) if verify else False
        result = Download(take_id=take_id, audio=audio, sample_rate=begin.sample_rate,
                          sample_format=begin.sample_format, frames=begin.frames, sha256=begin.sha256,
                          pcm_sha256=pcm_sha, verified=verified)
        if path is not None:
            result.path = write_wav(path, audio, begin.sample_rate, begin.sample_format)
        return result

    async def _verify(self, take_id: str, begin: m.DownloadBegin, pcm_sha: str, audio: np.ndarray) -> bool:
        announced = (begin.sha256 or "").lower()
        if not announced:
            return False
        if announced == pcm_sha:
            return True
        if take_id not in self._take_paths:  # learn the take's host path from the daemon's sessions
            sessions = await self.sessions()  # type: ignore[attr-defined]
            self.remember_take_paths([t for s in sessions for st in s.stems for t in st.takes])
        local = self._take_paths.get(take_id)
        if local is None or not Path(local).is_file():
            logger.info("download %s: sha256 names the take's WAV file, which is not readable here", take_id)
            return False
        file_sha = sha256_file(Path(local))
        if file_sha != announced:
            raise InvalidAudio(f"download of {take_id}: sha256 {announced} matches neither the PCM received "
                               f"({pcm_sha}) nor the take's file ({file_sha})", take_id=take_id)
        import soundfile as sf

        data, _ = sf.read(str(local), dtype="float32", always_2d=True)
        tol = 0.0 if begin.sample_format == "float32" else 2.0 ** -(8 * bytes_per_sample(begin.sample_format) - 1)
        if data.shape[0] != audio.shape[1] or not np.allclose(data.T, audio, atol=tol, rtol=0):
            raise InvalidAudio(f"download of {take_id}: the samples received differ from the take's file",
                               take_id=take_id)
        return True

    def remember_take_paths(self, takes: Any) -> None:
        """Record host paths of takes (from job.done / session replies) for WAV-digest verification."""
        for take in takes:
            if take is not None:
                self._take_paths[take.take_id] = take.path

    async def upload(self, source: str | Path | np.ndarray, *, stem: str | None, session_id: str | None = None,
                     sample_rate: int = SAMPLE_RATE, start_sample: int = 0, sample_format: SampleFormat = "float32",
                     purpose: Literal["take", "reference"] = "take", name: str = "", chunk_frames: int = SAMPLE_RATE,
                     on_progress: Progress | None = None) -> m.UploadDone:
        """Upload a file (any rate, mono or stereo) or a (C, N) array at ``sample_rate``; returns ``upload.done``."""
        if isinstance(source, (str, Path)):
            audio, sample_rate = read_audio_file(source)
            name = name or Path(source).name
        else:
            audio = np.asarray(source, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None, :]
            if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
                raise InvalidAudio(f"upload audio must be (channels 1|2, frames > 0), got shape {audio.shape}")
        channels, frames = audio.shape
        pcm = encode_pcm(audio, sample_format)
        frame_bytes = channels * bytes_per_sample(sample_format)
        chunk_frames = max(1, min(chunk_frames, (MAX_FRAME_BYTES - HEADER_SIZE) // frame_bytes, frames))
        total = chunk_count(frames, chunk_frames)
        ready = await self.request(m.UploadBegin(
            session_id=session_id, stem=stem, purpose=purpose, name=name, sample_rate=sample_rate,
            channels=channels, sample_format=sample_format, frames=frames, total_chunks=total,
            start_sample=start_sample, sha256=hashlib.sha256(pcm).hexdigest()))
        if ready.chunk_frames < chunk_frames:
            raise InvalidArgument(f"the daemon takes at most {ready.chunk_frames} frames per chunk; "
                                  f"retry with chunk_frames={ready.chunk_frames}", field="chunk_frames")
        from clients.python.connection import ConnectionLost

        generation = self.generation  # type: ignore[attr-defined]
        ws = await self._ensure_connected()
        sent = 0
        for frame in split_pcm(pcm, kind=FrameKind.UPLOAD, transfer_id=ready.transfer_id, sample_rate=sample_rate,
                               channels=channels, sample_format=sample_format, chunk_frames=chunk_frames):
            if self.generation != generation:  # type: ignore[attr-defined]
                raise ConnectionLost(f"connection lost during the upload of {name or 'audio'}; upload it again")
            try:
                await ws.send(encode_frame(frame))
            except Exception as exc:  # ConnectionClosed
                raise ConnectionLost(f"connection lost during the upload: {exc}") from None
            sent += frame.frames
            if on_progress is not None:
                on_progress(sent, frames)
        done = await self.request(m.UploadEnd(transfer_id=ready.transfer_id))
        if done.take is not None:
            self.remember_take_paths([done.take])
        return done  # type: ignore[no-any-return]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int, sample_format: str) -> Path:
    """Write (C, N) float32 as a WAV of the wire format's depth (exact for what was received)."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.ascontiguousarray(audio.T), sample_rate, subtype=_SUBTYPES[sample_format], format="WAV")
    return p
