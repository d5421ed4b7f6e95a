"""Audio in and out of the daemon: chunked uploads, downloads, host-path imports and audition.

Uploads (WebSocket): ``upload.begin`` is checked against the limits (frames, bytes, open
transfers) and answered with ``upload.ready``; binary frames (``protocol.binary``, kind upload) are
collected in order by a :class:`ChunkAssembler`; ``upload.end`` decodes the PCM, refuses NaN/Inf
(``non_finite_audio``), converts it to 48 kHz stereo and stores it as a take (``uploaded``) or as
concept reference audio. Host paths (OSC) are imported only inside the configured allowed folders,
after ``realpath`` (``path_not_allowed``). Downloads and client audition streams send a take's
audio as binary frames; host audition plays through :class:`daw_bridge.audition.Audition`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from daw_bridge.journal import TakeRow
from daw_bridge.render import new_take_id, read_timeline, take_record
from daw_bridge.wav import decode_samples, encode_samples
from engine.audio import check_finite, load_audio, prepare
from protocol import messages as m
from protocol.binary import HEADER_SIZE, ChunkAssembler, FrameKind, bytes_per_sample, decode_frame, encode_frame, split_pcm
from protocol.errors import (AudioDeviceError, InvalidArgument, InvalidAudio, LimitExceeded, MessageTooLarge,
                             PathNotAllowed, RegionError, UnknownStem)
from protocol.region import resolve_region

if TYPE_CHECKING:
    from daw_bridge.dispatcher import Dispatcher, Peer

log = logging.getLogger(__name__)

MAX_OPEN_UPLOADS = 4  # per peer
MAX_BUFFERED_UPLOAD_FACTOR = 4  # all open uploads together: at most 4 x the single-upload limit in memory
DEFAULT_CHUNK_FRAMES = 48_000
AUDIO_CALL_TIMEOUT = 15.0  # seconds a PortAudio call may take before the request fails


async def _audio_call(fn: Any, what: str) -> Any:
    """Run a (blocking) PortAudio call off the loop; a device that hangs fails the request, not the daemon."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, fn), AUDIO_CALL_TIMEOUT)
    except asyncio.TimeoutError:
        log.error("audio output did not answer %s within %.0f s", what, AUDIO_CALL_TIMEOUT)
        raise AudioDeviceError(f"the audio output did not answer ({what}) within {AUDIO_CALL_TIMEOUT:g} s") from None
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(f"no audio output available: {exc}") from None


class Transfers:
    def __init__(self, dispatcher: "Dispatcher") -> None:
        self.d = dispatcher
        self._ids = itertools.count(1)
        self._audition: Any = None
        self._audition_id: str | None = None

    def handlers(self) -> dict[type, Any]:
        return {m.UploadBegin: self._upload_begin, m.UploadEnd: self._upload_end, m.Download: self._download,
                m.AuditionPlay: self._audition_play, m.AuditionStop: self._audition_stop, m.UploadPath: self._upload_path}

    def forget(self, peer: "Peer") -> None:
        peer.uploads.clear()

    def close(self) -> None:
        if self._audition is not None:
            try:
                self._audition.close()
            except Exception:  # noqa: BLE001
                log.debug("audition close failed", exc_info=True)

    # ---- uploads -------------------------------------------------------------------------------
    async def _upload_begin(self, peer: "Peer", msg: m.UploadBegin) -> None:
        lim = self.d.limits
        if peer.transport != "ws":
            raise InvalidArgument("uploads of audio data need a WebSocket; over OSC name a file in an allowed folder")
        if msg.frames > lim.max_upload_frames:
            raise MessageTooLarge(f"upload of {msg.frames} frames exceeds the limit of {lim.max_upload_frames} "
                                  f"({lim.max_upload_frames / 48_000:g} s at 48 kHz)", limit=lim.max_upload_frames)
        size = msg.frames * msg.channels * bytes_per_sample(msg.sample_format)
        if size > self.d.settings.max_upload_bytes:
            raise MessageTooLarge(f"upload of {size} bytes exceeds the limit of {self.d.settings.max_upload_bytes}",
                                  limit=self.d.settings.max_upload_bytes)
        buffered = sum(e[0].frames * e[0].channels * bytes_per_sample(e[0].sample_format)
                       for p in self.d.peers for e in p.uploads.values())
        if buffered + size > MAX_BUFFERED_UPLOAD_FACTOR * self.d.settings.max_upload_bytes:
            raise LimitExceeded(f"{buffered} bytes of uploads are in flight; try again when they finish",
                                limit=MAX_BUFFERED_UPLOAD_FACTOR * self.d.settings.max_upload_bytes)
        if len(peer.uploads) >= MAX_OPEN_UPLOADS:
            raise LimitExceeded(f"{len(peer.uploads)} uploads are already open on this connection "
                                f"(limit {MAX_OPEN_UPLOADS})", limit=MAX_OPEN_UPLOADS)
        session = None
        if msg.purpose == "take":
            session = self.d.session(msg.session_id)
            if msg.stem not in session.stems:
                raise UnknownStem(f"session {session.session_id!r} has no stem {msg.stem!r}; stems: {session.stems}",
                                  stem=msg.stem)
        frame_bytes = msg.channels * bytes_per_sample(msg.sample_format)
        chunk_frames = max(1, min(DEFAULT_CHUNK_FRAMES * 4, (lim.max_binary_frame_bytes - HEADER_SIZE) // frame_bytes))
        if msg.total_chunks < -(-msg.frames // chunk_frames):
            raise InvalidArgument(f"{msg.total_chunks} chunks cannot carry {msg.frames} frames at most "
                                  f"{chunk_frames} frames each", field="upload.begin.total_chunks")
        tid = next(self._ids)
        peer.uploads[tid] = (msg, session.session_id if session else None,
                             ChunkAssembler(transfer_id=tid, kind=FrameKind.UPLOAD, frames=msg.frames,
                                            total_chunks=msg.total_chunks, sample_rate=msg.sample_rate,
                                            channels=msg.channels, sample_format=msg.sample_format, sha256=msg.sha256))
        await peer.send(m.UploadReady(id=msg.id, transfer_id=tid, chunk_frames=chunk_frames))

    async def binary_frame(self, peer: "Peer", data: bytes) -> None:
        frame = decode_frame(data, max_bytes=self.d.limits.max_binary_frame_bytes)
        if frame.kind != FrameKind.UPLOAD:
            raise InvalidArgument(f"clients may only send upload frames, got {frame.kind.name.lower()}", field="kind")
        entry = peer.uploads.get(frame.transfer_id)
        if entry is None:
            raise InvalidArgument(f"no open upload with transfer id {frame.transfer_id} on this connection",
                                  field="transfer_id", transfer_id=frame.transfer_id)
        try:
            entry[2].add(frame)
        except Exception:
            peer.uploads.pop(frame.transfer_id, None)  # a broken transfer is aborted; start a new one
            raise

    async def _upload_end(self, peer: "Peer", msg: m.UploadEnd) -> None:
        entry = peer.uploads.pop(msg.transfer_id, None)
        if entry is None:
            raise InvalidArgument(f"no open upload with transfer id {msg.transfer_id}", field="upload.end.transfer_id")
        begin, session_id, asm = entry
        pcm = asm.finish()
        loop = asyncio.get_running_loop()
        audio = await loop.run_in_executor(None, self._decode_upload, pcm, begin)
        if begin.purpose == "reference":
            ref_id = "r-" + secrets.token_hex(6)
            path = self.d.storage.root / "references" / f"{ref_id}.wav"
            from daw_bridge.storage import atomic_write_bytes
            from daw_bridge.wav import build_bwf

            await loop.run_in_executor(None, lambda: atomic_write_bytes(
                path, build_bwf(audio, 48_000, subtype="float32", description=begin.name or ref_id)))
            await peer.send(m.UploadDone(id=msg.id, transfer_id=msg.transfer_id, reference_id=ref_id))
            return
        row = await loop.run_in_executor(None, self.store_upload, session_id, begin.stem, audio, begin.start_sample,
                                         begin.name)
        await peer.send(m.UploadDone(id=msg.id, transfer_id=msg.transfer_id, take=take_record(row)))

    @staticmethod
    def _decode_upload(pcm: bytes, begin: m.UploadBegin) -> np.ndarray:
        arr = decode_samples(pcm, begin.sample_format, begin.channels)
        check_finite(arr, begin.name or "upload")
        return prepare(arr, begin.sample_rate, what=begin.name or "upload")

    def store_upload(self, session_id: str | None, stem: str | None, audio: np.ndarray, start_sample: int,
                     name: str) -> TakeRow:
        """Write uploaded (2, N) 48 kHz audio as a float32 take of ``stem`` (lossless) and journal it."""
        s = self.d.session(session_id)
        if stem not in s.stems:
            raise UnknownStem(f"session {s.session_id!r} has no stem {stem!r}; stems: {s.stems}", stem=stem)
        take_id = new_take_id()
        number = self.d.journal.next_take_number(s.session_id, stem)
        manifest = {"stemforge": "take manifest v1", "take_id": take_id, "source": "uploaded", "original_name": name,
                    "session_id": s.session_id, "created": time.time()}
        wt = self.d.storage.write_take(session_id=s.session_id, session_name=s.name or s.session_id, stem=stem,
                                       bpm=s.bpm, number=number, audio=audio, start_sample=start_sample,
                                       manifest=manifest, fmt="float32",
                                       description=f"Stemforge upload {name}"[:256])
        row = TakeRow(take_id=take_id, session_id=s.session_id, stem=stem, number=wt.number, path=str(wt.path),
                      manifest_path=str(wt.manifest_path), start_sample=start_sample, frames=wt.frames,
                      sample_rate=48_000, sha256=wt.sha256, format="float32", source="uploaded", job_id=None,
                      created=time.time())
        self.d.journal.add_take(row)
        end = start_sample + wt.frames
        if end > s.length_samples:
            self.d.journal.update_session(s.session_id, length_samples=end)
        return row

    def check_path(self, path: str) -> Path:
        """``path`` resolved (symlinks followed) and inside an allowed folder, or :class:`PathNotAllowed`."""
        real = Path(os.path.realpath(os.path.expanduser(path)))
        for folder in self.d.settings.allow_dirs:
            base = Path(os.path.realpath(os.path.expanduser(folder)))
            if real == base or base in real.parents:
                return real
        raise PathNotAllowed(f"{path} is not inside an allowed folder (start the daemon with --allow-dir)",
                             path=str(path))

    async def import_path(self, session_id: str | None, stem: str, path: str, start_sample: int = 0) -> TakeRow:
        real = self.check_path(path)
        if self.d.limits.max_upload_frames and real.is_file():
            try:
                info = sf.info(str(real))
            except Exception as exc:  # noqa: BLE001
                raise InvalidAudio(f"cannot read {real.name}: {exc}", path=str(real)) from None
            if info.frames * 48_000 / max(info.samplerate, 1) > self.d.limits.max_upload_frames:
                raise MessageTooLarge(f"{real.name} is longer than the upload limit", path=str(real))
        loop = asyncio.get_running_loop()
        audio = await loop.run_in_executor(None, load_audio, real)
        return await loop.run_in_executor(None, self.store_upload, session_id, stem, audio, start_sample, real.name)

    async def _upload_path(self, peer: "Peer", msg: m.UploadPath) -> None:
        row = await self.import_path(msg.session_id, msg.stem, msg.path, msg.start_sample)
        await peer.send(m.UploadDone(id=msg.id, transfer_id=0, take=take_record(row)))

    # ---- downloads -----------------------------------------------------------------------------
    async def _download(self, peer: "Peer", msg: m.Download) -> None:
        take = self.d.journal.get_take(msg.take_id)
        tid = next(self._ids)
        chunk_frames = min(msg.chunk_frames, max(1, (self.d.limits.max_binary_frame_bytes - HEADER_SIZE)
                                                 // (2 * bytes_per_sample(msg.sample_format))))

        def prepare_frames() -> tuple[np.ndarray, list[bytes]]:  # off the event loop: decoding, encoding, CRCs
            audio = _read_take(take)
            pcm = encode_samples(audio, msg.sample_format)
            return audio, [encode_frame(f) for f in split_pcm(
                pcm, kind=FrameKind.DOWNLOAD, transfer_id=tid, sample_rate=48_000, channels=2,
                sample_format=msg.sample_format, chunk_frames=chunk_frames)]

        audio, frames = await asyncio.get_running_loop().run_in_executor(None, prepare_frames)
        await peer.send(m.DownloadBegin(id=msg.id, transfer_id=tid, take_id=take.take_id, sample_format=msg.sample_format,
                                        frames=audio.shape[1], total_chunks=len(frames), chunk_frames=chunk_frames,
                                        sha256=take.sha256))
        for data in frames:
            await peer.send_binary(data)
        await peer.send(m.DownloadEnd(id=msg.id, transfer_id=tid, frames=audio.shape[1], chunks=len(frames)))

    # ---- audition ------------------------------------------------------------------------------
    async def devices(self) -> tuple[m.AudioDevice, ...]:
        from daw_bridge.audition import Audition

        try:
            devs = await _audio_call(Audition.devices, "listing devices")
        except Exception as exc:  # noqa: BLE001 - no PortAudio, no devices: still serve info
            log.debug("no audio devices: %s", exc)
            return ()
        return tuple(m.AudioDevice(index=int(d["index"]), name=str(d["name"]), channels=int(d.get("channels", 2)),
                                   default=bool(d.get("default", False))) for d in devs)

    def audition_audio(self, session_id: str | None, take_id: str | None) -> tuple[np.ndarray, int]:
        """(audio, timeline start sample) of a take, or of the mix of the session's active takes."""
        if take_id is not None:
            take = self.d.journal.get_take(take_id)
            return _read_take(take), take.start_sample
        s = self.d.session(session_id)
        if not s.active:
            raise InvalidArgument(f"session {s.session_id!r} has no takes to play", field="audition.play.take_id")
        rows = [self.d.journal.get_take(t) for t in s.active.values()]
        end = max(s.length_samples, max(r.start_sample + r.frames for r in rows))
        mix = np.zeros((2, end), dtype=np.float32)
        for r in rows:
            mix += read_timeline(r, 0, end)
        return mix, 0

    async def _audition_play(self, peer: "Peer", msg: m.AuditionPlay) -> None:
        loop = asyncio.get_running_loop()
        audio, origin = await loop.run_in_executor(None, self.audition_audio, msg.session_id, msg.take_id)
        span = None
        if msg.loop is not None:
            s = self.d.session(msg.session_id) if msg.take_id is None else \
                self.d.journal.get_session(self.d.journal.get_take(msg.take_id).session_id)
            ls, le = resolve_region(msg.loop, total_samples=None, bpm=s.bpm, time_signature=s.time_signature)
            span = (ls - origin, le - origin)
            if span[0] < 0 or span[1] > audio.shape[1]:
                raise RegionError(f"loop region (samples {ls}..{le}) is outside the audio "
                                  f"(samples {origin}..{origin + audio.shape[1]})", start=ls, end=le)
        aid = "a-" + secrets.token_hex(4)
        if msg.destination == "client":
            tid = next(self._ids)
            part = audio if span is None else audio[:, span[0]:span[1]]
            frames = await loop.run_in_executor(None, lambda: [encode_frame(f) for f in split_pcm(
                encode_samples(part, msg.sample_format), kind=FrameKind.STREAM, transfer_id=tid, sample_rate=48_000,
                channels=2, sample_format=msg.sample_format, chunk_frames=DEFAULT_CHUNK_FRAMES // 10)])
            await peer.send(m.AuditionStarted(id=msg.id, audition_id=aid, destination="client", frames=part.shape[1],
                                              loop_start=None if span is None else span[0] + origin,
                                              loop_end=None if span is None else span[1] + origin, transfer_id=tid))
            for data in frames:
                await peer.send_binary(data)
            return
        if self._audition is None:
            from daw_bridge.audition import Audition

            self._audition = Audition()
        device, audition = msg.device, self._audition

        started = asyncio.Event()  # audition.stopped must follow audition.started, even for a short sound
        state = {"started": False}

        async def send_stopped(reason: str) -> None:
            await started.wait()
            if state["started"]:
                await peer.send(m.AuditionStopped(id=msg.id, audition_id=aid,
                                                  reason="ended" if reason == "ended" else "stopped"))

        def on_end(reason: str) -> None:  # PortAudio / helper thread
            try:
                loop.call_soon_threadsafe(lambda: self.d.spawn(send_stopped(reason)))
            except RuntimeError:  # loop closed: the daemon is shutting down
                pass

        try:
            dev = await _audio_call(lambda: audition.play(audio, device=device, loop=span, on_end=on_end), "play")
            state["started"] = True
        finally:
            if not state["started"]:
                started.set()
        self._audition_id = aid
        try:
            await peer.send(m.AuditionStarted(id=msg.id, audition_id=aid, destination="host",
                                              device=str(dev.get("name")), frames=audio.shape[1],
                                              loop_start=None if span is None else span[0] + origin,
                                              loop_end=None if span is None else span[1] + origin))
        finally:
            started.set()

    async def _audition_stop(self, peer: "Peer", msg: m.AuditionStop) -> None:
        if self._audition is not None:
            await _audio_call(self._audition.stop, "stop")
        await peer.send(m.Ok(id=msg.id, request=msg.TYPE))


def _read_take(take: TakeRow) -> np.ndarray:
    try:
        data, sr = sf.read(take.path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise InvalidAudio(f"cannot read take {take.take_id}: {exc}", take_id=take.take_id) from None
    if sr != 48_000:
        raise InvalidAudio(f"take {take.take_id} is at {sr} Hz", take_id=take.take_id)
    return np.ascontiguousarray(data.T)


__all__ = ["Transfers"]
