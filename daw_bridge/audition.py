"""Live audition: play a take or the mix on the host's audio output.

:class:`Audition` wraps one ``sounddevice.OutputStream`` whose callback runs on PortAudio's
own thread, so :meth:`Audition.play` returns at once and never blocks an asyncio loop.
A loop region ``(start, end)`` (samples at 48 kHz) starts playback at ``start`` and repeats
``[start, end)`` until :meth:`Audition.stop`; without a region the audio plays once.

``sounddevice`` is imported lazily: without Debian's ``libportaudio2`` its import raises
``OSError``, reported as :class:`protocol.errors.AudioDeviceError` like every other
"no usable output" condition (no devices, unknown device, device refuses the format).
PortAudio reads the ALSA configuration once per process (at import), so a change of
``~/.asoundrc`` needs a fresh process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from engine.config import SAMPLE_RATE
from protocol.errors import AudioDeviceError, InvalidAudio, NonFiniteAudio, RegionError

logger = logging.getLogger(__name__)

DeviceSpec = int | str | None


def _sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into :class:`AudioDeviceError`."""
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise AudioDeviceError(
            f"audio output unavailable: {exc} (install the libportaudio2 package)", reason="no_portaudio"
        ) from None
    return sounddevice


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    hostapi: str
    is_default: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "channels": self.channels,
            "default_samplerate": self.default_samplerate,
            "hostapi": self.hostapi,
            "default": self.is_default,
        }


def list_output_devices() -> list[OutputDevice]:
    """Every PortAudio device with at least one output channel (may be empty)."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot query audio devices: {exc}") from None
    try:
        default_out = int(sd.default.device[1])
    except (TypeError, ValueError, IndexError):
        default_out = -1
    out = []
    for dev in devices:
        if int(dev["max_output_channels"]) < 1:
            continue
        out.append(
            OutputDevice(
                index=int(dev["index"]),
                name=str(dev["name"]),
                channels=int(dev["max_output_channels"]),
                default_samplerate=float(dev["default_samplerate"]),
                hostapi=str(hostapis[int(dev["hostapi"])]["name"]),
                is_default=int(dev["index"]) == default_out,
            )
        )
    return out


def resolve_device(device: DeviceSpec, devices: list[OutputDevice]) -> OutputDevice:
    """Pick an output: ``None`` = the default (else the first), an index, or a name.

    A name matches exactly first, then as a case-insensitive substring (it must be unique).
    """
    if not devices:
        raise AudioDeviceError("no audio output device found on this host", reason="no_devices")
    if device is None:
        for dev in devices:
            if dev.is_default:
                return dev
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        idx = int(device)
        for dev in devices:
            if dev.index == idx:
                return dev
        raise AudioDeviceError(f"no output device with index {idx}", device=idx,
                               available=[d.name for d in devices])
    name = str(device)
    exact = [d for d in devices if d.name == name]
    if exact:
        return exact[0]
    partial = [d for d in devices if name.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise AudioDeviceError(f"output device name {name!r} is ambiguous: {[d.name for d in partial]}",
                               device=name)
    raise AudioDeviceError(f"no output device named {name!r}", device=name,
                           available=[d.name for d in devices])


def validate_audio(audio: np.ndarray) -> np.ndarray:
    """(2, N) finite audio -> C-contiguous float32 (N, 2) frames for PortAudio."""
    arr = np.asarray(audio)
    if arr.ndim != 2 or arr.shape[0] != 2 or arr.shape[1] == 0:
        raise InvalidAudio(f"audition needs stereo audio of shape (2, N>0), got {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():  # as engine.audio.check_finite, without importing scipy into the daemon
        bad = int(finite.size - np.count_nonzero(finite))
        raise NonFiniteAudio(f"audition audio contains {bad} NaN/Inf samples", samples=bad)
    return np.ascontiguousarray(arr.T)


def validate_loop(loop: tuple[int, int] | None, length: int) -> tuple[int, int] | None:
    if loop is None:
        return None
    try:
        start, end = (int(loop[0]), int(loop[1]))
    except (TypeError, ValueError, IndexError):
        raise RegionError(f"loop region must be (start, end) samples, got {loop!r}") from None
    if start < 0 or end <= start or end > length:
        raise RegionError(f"loop region ({start}, {end}) is not inside the audio (0, {length})",
                          start=start, end=end, length=length)
    return start, end


class _Player:
    """State shared with PortAudio's callback thread: frames, position, loop."""

    def __init__(self, frames: np.ndarray, loop: tuple[int, int] | None,
                 on_end: Callable[[str], None] | None = None) -> None:
        self.frames = frames  # (N, 2) float32
        self.loop = loop
        self.pos = loop[0] if loop else 0
        self.played = 0  # frames handed to PortAudio (all passes)
        self.done = threading.Event()
        self.stopped = False  # ended by stop(), not by reaching the end
        self.closed = threading.Event()  # its stream is closed (the device is free)
        self.on_end = on_end
        self._ended = threading.Lock()

    def finish(self) -> None:
        """Mark playback over and report it once (``ended`` or ``stopped``)."""
        if not self._ended.acquire(blocking=False):
            return
        self.done.set()
        if self.on_end is not None:
            try:
                self.on_end("stopped" if self.stopped else "ended")
            except Exception:  # a failing listener must not break the audio thread
                logger.exception("audition on_end callback failed")

    def fill(self, outdata: np.ndarray, nframes: int) -> bool:
        """Write ``nframes`` into ``outdata``; return False once the (non-looped) audio is over."""
        written = 0
        if self.loop is not None:
            start, end = self.loop
            while written < nframes:
                n = min(nframes - written, end - self.pos)
                outdata[written:written + n] = self.frames[self.pos:self.pos + n]
                written += n
                self.pos += n
                if self.pos >= end:
                    self.pos = start
            self.played += nframes
            return True
        n = min(nframes, len(self.frames) - self.pos)
        outdata[:n] = self.frames[self.pos:self.pos + n]
        if n < nframes:
            outdata[n:] = 0.0
        self.pos += n
        self.played += n
        return self.pos < len(self.frames)


class Audition:
    """Non-blocking playback on one host output device (one sound at a time).

    ``play`` replaces whatever is playing. All PortAudio work of the callback happens on
    PortAudio's thread; ``play``/``stop`` only open, start and close the stream.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, latency: str | float = "high") -> None:
        self.sample_rate = sample_rate
        self.latency = latency
        self._lock = threading.Lock()
        self._stream: Any = None
        self._player: _Player | None = None
        self._device: OutputDevice | None = None

    @staticmethod
    def devices() -> list[dict[str, Any]]:
        """Output devices as JSON-ready dicts (index, name, channels, default_samplerate, hostapi, default)."""
        return [d.to_dict() for d in list_output_devices()]

    @property
    def is_playing(self) -> bool:
        with self._lock:
            return self._player is not None and not self._player.done.is_set()

    @property
    def device(self) -> dict[str, Any] | None:
        """The device of the current (or last) playback."""
        return self._device.to_dict() if self._device else None

    @property
    def stream_open(self) -> bool:
        """Whether an output stream holds the device (False once a playback ended and was released)."""
        with self._lock:
            return self._stream is not None

    @property
    def position(self) -> int:
        """Frames handed to the device so far in the current playback (48 kHz frames)."""
        with self._lock:
            return self._player.played if self._player else 0

    def play(self, audio: np.ndarray, device: DeviceSpec = None, loop: tuple[int, int] | None = None,
             on_end: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Start playing (2, N) float32 48 kHz ``audio``; returns the device used. Never blocks on playback.

        ``on_end(reason)`` is called once, from a PortAudio or helper thread (use
        ``loop.call_soon_threadsafe`` to reach an event loop), with ``"ended"`` or ``"stopped"``.
        A stream that reaches its end is closed by a watcher thread, releasing the device."""
        frames = validate_audio(audio)
        region = validate_loop(loop, frames.shape[0])
        sd = _sounddevice()
        dev = resolve_device(device, list_output_devices())
        rate = self._pick_rate(sd, dev)
        if rate != self.sample_rate:
            from engine.audio import resample

            logger.info("device %r does not take %d Hz; resampling to %d Hz", dev.name, self.sample_rate, rate)
            frames = np.ascontiguousarray(resample(frames.T, self.sample_rate, rate).T)
            if region:
                region = (round(region[0] * rate / self.sample_rate), round(region[1] * rate / self.sample_rate))
                if region[1] <= region[0]:
                    raise RegionError("loop region is too short for this device's sample rate")
        self.stop()
        player = _Player(frames, region, on_end)

        def finished() -> None:  # PortAudio thread, after the last buffer (or an abort)
            player.finish()

        def callback(outdata: np.ndarray, nframes: int, _time: Any, status: Any) -> None:
            if status:
                logger.debug("audition stream status: %s", status)
            if not player.fill(outdata, nframes):
                raise sd.CallbackStop

        stream = None
        try:
            stream = sd.OutputStream(
                samplerate=rate, channels=2, dtype="float32", device=dev.index, latency=self.latency,
                callback=callback, finished_callback=finished,
            )
            with self._lock:
                self._stream, self._player, self._device = stream, player, dev
            stream.start()
            threading.Thread(target=self._release_when_ended, args=(player,), name="audition-release",
                             daemon=True).start()
        except sd.PortAudioError as exc:
            with self._lock:
                if self._player is player:
                    self._stream = self._player = None
            if stream is not None:
                try:
                    stream.close()
                except Exception:  # already broken: nothing more to release
                    logger.debug("audition: closing a stream that failed to start failed", exc_info=True)
            player.stopped = True
            player.finish()
            player.closed.set()
            raise AudioDeviceError(f"cannot open output device {dev.name!r}: {exc}", device=dev.name) from None
        logger.info("audition: playing %.2f s on %r%s", frames.shape[0] / rate, dev.name,
                    f" looping {region}" if region else "")
        return dev.to_dict()

    def _pick_rate(self, sd: ModuleType, dev: OutputDevice) -> int:
        for rate in (self.sample_rate, int(dev.default_samplerate)):
            try:
                sd.check_output_settings(device=dev.index, channels=2, dtype="float32", samplerate=rate)
                return rate
            except sd.PortAudioError:
                continue
        raise AudioDeviceError(f"output device {dev.name!r} takes neither {self.sample_rate} Hz stereo "
                               f"nor its default rate", device=dev.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until playback ends and its stream is closed (True) or ``timeout`` passes (False).
        For CLIs and tests, not event loops."""
        with self._lock:
            player = self._player
        if player is None:
            return True
        if not player.done.wait(timeout):
            return False
        self._close_finished(player)
        return player.closed.wait(timeout if timeout is not None else 10.0)

    def _release_when_ended(self, player: _Player) -> None:
        """Watcher thread: close the stream of a playback that reaches its end (frees the device)."""
        player.done.wait()
        self._close_finished(player)

    def _close_finished(self, player: _Player) -> None:
        """Close the stream of a playback that ended by itself (whoever comes first closes it)."""
        with self._lock:
            if self._player is not player or self._stream is None:
                return
            stream, self._stream = self._stream, None
        try:
            stream.close()  # drains the last buffers of a stream that ended itself
        except Exception as exc:
            logger.warning("audition: closing the stream failed: %s", exc)
        finally:
            player.closed.set()

    def stop(self) -> bool:
        """Stop playback now; returns whether something was playing. Returns once the device is released."""
        with self._lock:
            stream, player = self._stream, self._player
            self._stream = None
        if stream is None:
            if player is not None and not player.closed.wait(5.0):  # a helper thread is closing it
                logger.warning("audition: the ended stream is still closing")
            return False
        was_playing = player is not None and not player.done.is_set()
        if player is not None:
            player.stopped = was_playing
        try:
            if was_playing:
                stream.abort()
            stream.close()
        except Exception as exc:  # PortAudio refusing to close is not fatal to the caller
            logger.warning("audition: closing the stream failed: %s", exc)
        if player is not None:
            player.finish()
            player.closed.set()
        if was_playing:
            logger.info("audition: stopped")
        return was_playing

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Audition:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
