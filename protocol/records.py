"""Value records carried inside protocol messages (regions, takes, sessions, jobs, concepts).

Every record is a frozen, keyword-only dataclass built from JSON-safe types: ``str``, ``int``,
``float``, ``bool``, ``Literal`` enums, ``tuple[...]`` (JSON arrays), ``dict[str, ...]`` (JSON
objects) and other records. ``None`` means "not given" and is omitted on the wire. Value checks
(ranges, non-empty names) run in ``__post_init__`` and raise :class:`InvalidArgument`; type checks
run in :mod:`protocol.convert` when a record is decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from protocol.convert import check_literals
from protocol.errors import InvalidArgument

PROTOCOL_VERSION = 1
SAMPLE_RATE = 48_000  # every sample index on the wire is at 48 kHz

RegionUnit = Literal["samples", "seconds", "beats", "bars"]
SampleFormat = Literal["pcm16", "pcm24", "float32"]  # PCM on the wire (binary frames)
OutputFormat = Literal["pcm24", "float32"]  # WAV subtype of written takes
TakeSource = Literal["generated", "inpainted", "continued", "uploaded"]
JobKind = Literal["generate", "inpaint", "continue", "concept.train"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
ConceptMethod = Literal["pivotal", "textual-inversion"]

#: stages a ``job.progress`` event names (informative; clients show them as they are)
STAGES = ("queued", "loading", "encoding", "sampling", "decoding", "writing", "training")


def check(cond: bool, where: str, message: str) -> None:
    """Raise :class:`InvalidArgument` naming ``where`` (``"type.field"``) unless ``cond``."""
    if not cond:
        raise InvalidArgument(f"{where}: {message}", field=where)


def check_finite(value: float | None, where: str) -> None:
    if value is not None:
        check(math.isfinite(value), where, f"must be a finite number, got {value!r}")


def check_time_signature(ts: tuple[int, int], where: str) -> None:
    check(len(ts) == 2, where, f"must be [numerator, denominator], got {list(ts)!r}")
    num, den = ts
    check(1 <= num <= 64, where, f"numerator must be in 1..64, got {num}")
    check(den in (1, 2, 4, 8, 16, 32, 64), where, f"denominator must be a power of two in 1..64, got {den}")


def check_bpm(bpm: float | None, where: str) -> None:
    if bpm is not None:
        check(math.isfinite(bpm) and 1.0 <= bpm <= 999.0, where, f"tempo must be in 1..999 bpm, got {bpm!r}")


@dataclass(frozen=True, kw_only=True)
class Region:
    """A span of the session timeline; :func:`protocol.region.resolve_region` turns it into samples.

    ``unit``:
      - ``samples``: sample indices at 48 kHz (integer values), ``end`` exclusive.
      - ``seconds``: seconds from the session start.
      - ``beats``: 0-based offset in quarter notes from the session start (Live's song time,
        REAPER's QN), at the session tempo (quarter notes per minute).
      - ``bars``: as a DAW shows positions, 1-based: bar ``start`` beat ``start_beat`` up to (not
        including) bar ``end`` beat ``end_beat``; a beat is one note of the time signature's
        denominator (an eighth in 7/8). ``start``/``end`` must be whole bars; beats may be fractional.
    """

    unit: RegionUnit = "seconds"
    start: float
    end: float
    start_beat: float | None = None  # bars only; None = beat 1
    end_beat: float | None = None  # bars only; None = beat 1

    def __post_init__(self) -> None:
        check_literals(self, "region")
        for name in ("start", "end", "start_beat", "end_beat"):
            check_finite(getattr(self, name), f"region.{name}")


@dataclass(frozen=True, kw_only=True)
class Take:
    """One rendered or uploaded audio file for one stem, placed on the session timeline."""

    take_id: str
    stem: str
    path: str  # absolute path of the WAV on the daemon's host
    start_sample: int = 0  # timeline position of the first frame (BWF TimeReference)
    frames: int  # exact length in samples at ``sample_rate``
    sample_rate: int = SAMPLE_RATE
    sha256: str = ""  # hex digest of the WAV file's bytes
    number: int = 0  # 1-based take number within the stem (0 = not numbered)
    format: OutputFormat = "pcm24"
    source: TakeSource = "generated"
    job_id: str | None = None
    manifest_path: str | None = None  # recall manifest beside the take

    def __post_init__(self) -> None:
        check_literals(self, "take")
        check(bool(self.take_id), "take.take_id", "must not be empty")
        check(bool(self.stem), "take.stem", "must not be empty")
        check(self.start_sample >= 0, "take.start_sample", f"must be >= 0, got {self.start_sample}")
        check(self.frames >= 0, "take.frames", f"must be >= 0, got {self.frames}")
        check(self.sample_rate > 0, "take.sample_rate", f"must be > 0, got {self.sample_rate}")


@dataclass(frozen=True, kw_only=True)
class StemState:
    """A stem lane of a session: all its takes (never deleted), the active one, and whether it is kept."""

    name: str
    takes: tuple[Take, ...] = ()
    active_take_id: str | None = None
    kept: bool = False  # kept stems are given as context when the others are regenerated


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    session_id: str
    name: str = ""
    bpm: float = 120.0  # quarter notes per minute
    time_signature: tuple[int, int] = (4, 4)
    length_samples: int  # timeline length at 48 kHz
    sample_rate: int = SAMPLE_RATE
    stems: tuple[StemState, ...] = ()

    def __post_init__(self) -> None:
        check_bpm(self.bpm, "session.bpm")
        check_time_signature(self.time_signature, "session.time_signature")
        check(self.length_samples > 0, "session.length_samples", f"must be > 0, got {self.length_samples}")


@dataclass(frozen=True, kw_only=True)
class JobInfo:
    job_id: str
    kind: JobKind
    state: JobState
    session_id: str | None = None
    step: int = 0
    total: int = 0
    stage: str = "queued"
    created: float = 0.0  # unix time
    error: dict[str, str] | None = None  # {"code", "message"} when failed
    take_ids: tuple[str, ...] = ()  # takes written, when done


@dataclass(frozen=True, kw_only=True)
class ConceptInfo:
    name: str  # used in prompts as <name>
    method: ConceptMethod
    tokens: tuple[str, ...] = ()
    base_model_hash: str = ""
    reference_sha256: str = ""
    steps: int = 0
    created: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    name: str
    hash: str
    trained: bool = True
    stems: tuple[str, ...] = ("bass", "drums", "instrument", "melody")
    samplers: tuple[str, ...] = ()
    default_steps: int = 0
    default_sampler: str = ""
    default_cfg: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_message_bytes: int = 1 << 20  # JSON text frame
    max_binary_frame_bytes: int = 4 << 20  # one audio chunk frame, header included
    max_upload_frames: int = SAMPLE_RATE * 600  # one upload, per channel
    max_region_samples: int = SAMPLE_RATE * 600
    max_connections: int = 16
    max_queued_jobs: int = 64


@dataclass(frozen=True, kw_only=True)
class AudioDevice:
    """An output device the daemon can audition on."""

    index: int
    name: str
    channels: int = 2
    default: bool = False


__all__ = [
    "PROTOCOL_VERSION", "SAMPLE_RATE", "STAGES", "RegionUnit", "SampleFormat", "OutputFormat", "TakeSource",
    "JobKind", "JobState", "ConceptMethod", "Region", "Take", "StemState", "SessionInfo", "JobInfo",
    "ConceptInfo", "ModelInfo", "Limits", "AudioDevice", "check", "check_finite", "check_bpm",
    "check_time_signature",
]
