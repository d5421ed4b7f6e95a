"""Protocol v1 events (daemon -> client). Import them from :mod:`protocol.messages`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from protocol.base import Message, _event
from protocol.errors import StemforgeError, error_from_dict
from protocol.records import (
    PROTOCOL_VERSION,
    SAMPLE_RATE,
    AudioDevice,
    ConceptInfo,
    JobInfo,
    JobKind,
    Limits,
    ModelInfo,
    OutputFormat,
    SampleFormat,
    SessionInfo,
    Take,
    check,
)


@_event
@dataclass(frozen=True, kw_only=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    protocol: int = PROTOCOL_VERSION


@_event
@dataclass(frozen=True, kw_only=True)
class Ok(Message):
    """Plain acknowledgement (``job.cancel``, ``concept.delete``, ``audition.stop``)."""

    TYPE: ClassVar[str] = "ok"
    request: str  # the request type acknowledged


@_event
@dataclass(frozen=True, kw_only=True)
class ServerInfo(Message):
    TYPE: ClassVar[str] = "server"
    version: str  # daemon version
    protocol: int = PROTOCOL_VERSION
    model: ModelInfo
    sample_rate: int = SAMPLE_RATE
    limits: Limits = Limits()
    concepts: tuple[ConceptInfo, ...] = ()
    devices: tuple[AudioDevice, ...] = ()
    output_formats: tuple[OutputFormat, ...] = ("pcm24", "float32")


@_event
@dataclass(frozen=True, kw_only=True)
class Session(Message):
    """The state of one session: reply to session.create/update/get, keep and take.select."""

    TYPE: ClassVar[str] = "session"
    session: SessionInfo


@_event
@dataclass(frozen=True, kw_only=True)
class Sessions(Message):
    TYPE: ClassVar[str] = "sessions"
    sessions: tuple[SessionInfo, ...] = ()


@_event
@dataclass(frozen=True, kw_only=True)
class JobAccepted(Message):
    """The job is durably queued (it survives a daemon restart) and will end in exactly one of
    ``job.done``, ``job.failed``, ``job.cancelled``."""

    TYPE: ClassVar[str] = "job.accepted"
    job_id: str
    kind: JobKind
    session_id: str | None = None
    position: int = 0  # jobs ahead of it in the queue
    seed: int | None = None


@_event
@dataclass(frozen=True, kw_only=True)
class JobProgress(Message):
    TYPE: ClassVar[str] = "job.progress"
    job_id: str
    step: int
    total: int
    stage: str = "sampling"  # one of records.STAGES

    def _check(self) -> None:
        check(0 <= self.step and (self.total == 0 or self.step <= self.total), "job.progress.step",
              f"must be in 0..total, got {self.step}/{self.total}")


@_event
@dataclass(frozen=True, kw_only=True)
class JobPreview(Message):
    """Optional intermediate audio: a host file ``path`` and/or binary frames (kind preview) on ``transfer_id``."""

    TYPE: ClassVar[str] = "job.preview"
    job_id: str
    step: int
    total: int
    stem: str | None = None  # None = the mix
    frames: int = 0
    path: str | None = None
    transfer_id: int | None = None


@_event
@dataclass(frozen=True, kw_only=True)
class JobDone(Message):
    """Per stem: take id, host path, sample rate, frames, start sample, sha256 (in ``takes``)."""

    TYPE: ClassVar[str] = "job.done"
    job_id: str
    kind: JobKind = "generate"
    session_id: str | None = None
    takes: tuple[Take, ...] = ()
    mix: Take | None = None
    seed: int | None = None
    manifest_path: str | None = None
    concept: ConceptInfo | None = None  # concept.train jobs


@_event
@dataclass(frozen=True, kw_only=True)
class JobFailed(Message):
    TYPE: ClassVar[str] = "job.failed"
    job_id: str
    code: str  # a wire code from protocol.errors
    message: str
    details: dict[str, Any] | None = None

    def to_exception(self) -> StemforgeError:
        return error_from_dict({"code": self.code, "message": self.message, "details": self.details})


@_event
@dataclass(frozen=True, kw_only=True)
class JobCancelledEvent(Message):
    TYPE: ClassVar[str] = "job.cancelled"
    job_id: str


@_event
@dataclass(frozen=True, kw_only=True)
class Jobs(Message):
    TYPE: ClassVar[str] = "jobs"
    jobs: tuple[JobInfo, ...] = ()


@_event
@dataclass(frozen=True, kw_only=True)
class UploadReady(Message):
    """Reply to upload.begin: send binary frames with this ``transfer_id``, at most ``chunk_frames`` each."""

    TYPE: ClassVar[str] = "upload.ready"
    transfer_id: int
    chunk_frames: int


@_event
@dataclass(frozen=True, kw_only=True)
class UploadDone(Message):
    TYPE: ClassVar[str] = "upload.done"
    transfer_id: int | None = None  # None for upload.path
    take: Take | None = None  # purpose take
    reference_id: str | None = None  # purpose reference


@_event
@dataclass(frozen=True, kw_only=True)
class DownloadBegin(Message):
    TYPE: ClassVar[str] = "download.begin"
    transfer_id: int
    take_id: str
    sample_rate: int = SAMPLE_RATE
    channels: int = 2
    sample_format: SampleFormat = "float32"
    frames: int
    total_chunks: int
    chunk_frames: int
    sha256: str = ""  # of the take's WAV file


@_event
@dataclass(frozen=True, kw_only=True)
class DownloadEnd(Message):
    TYPE: ClassVar[str] = "download.end"
    transfer_id: int
    frames: int
    chunks: int


@_event
@dataclass(frozen=True, kw_only=True)
class Manifest(Message):
    """Reply to take.manifest: the manifest written beside the take, as it is on disk."""

    TYPE: ClassVar[str] = "manifest"
    take_id: str
    manifest: dict[str, Any]


@_event
@dataclass(frozen=True, kw_only=True)
class AuditionStarted(Message):
    TYPE: ClassVar[str] = "audition.started"
    audition_id: str
    destination: Literal["host", "client"] = "host"
    device: str | None = None  # host device name
    sample_rate: int = SAMPLE_RATE
    frames: int = 0
    loop_start: int | None = None  # samples, when looping
    loop_end: int | None = None
    transfer_id: int | None = None  # client streams: binary frames of kind stream


@_event
@dataclass(frozen=True, kw_only=True)
class AuditionStopped(Message):
    TYPE: ClassVar[str] = "audition.stopped"
    audition_id: str
    reason: Literal["stopped", "ended", "error"] = "stopped"


@_event
@dataclass(frozen=True, kw_only=True)
class Concepts(Message):
    TYPE: ClassVar[str] = "concepts"
    concepts: tuple[ConceptInfo, ...] = ()


@_event
@dataclass(frozen=True, kw_only=True)
class Error(Message):
    """A request could not be served; ``id`` is the request's id (None if it could not be read)."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    details: dict[str, Any] | None = None
    in_reply_to: str | None = None  # the request's type, when known

    @classmethod
    def from_exception(cls, exc: StemforgeError, id: str | int | None = None,
                       in_reply_to: str | None = None) -> "Error":
        return cls(id=id, code=exc.code, message=exc.message, details=dict(exc.details) or None,
                   in_reply_to=in_reply_to)

    def to_exception(self) -> StemforgeError:
        return error_from_dict({"code": self.code, "message": self.message, "details": self.details})
