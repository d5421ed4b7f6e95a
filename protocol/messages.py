"""Protocol v1 messages: every request a client sends and every event the daemon sends.

A message is a frozen, keyword-only dataclass with a class-level wire ``TYPE``. On the wire (see
:mod:`protocol.codec`) it is a JSON object ``{"v": 1, "type": TYPE, ...fields}``; fields that are
``None`` are omitted. Every message has an optional client ``id`` (string or integer): the daemon
copies the ``id`` of a request into every reply and into every event of the job that request
started, so a client can match them.

``session_id`` ``None`` in a request means the daemon's default session (created on first use
with the default tempo and length), so a bare ``{"v": 1, "type": "generate", "prompt": "..."}``
works. Sample positions are always at 48 kHz.

Records used inside messages (``Region``, ``Take``, ``SessionInfo`` ...) live in
:mod:`protocol.records` and are re-exported here.
"""

from __future__ import annotations

from protocol.base import EVENTS, MAX_PROMPT_CHARS, MAX_SEED, MAX_STEPS, MESSAGE_TYPES, REQUESTS, Message
from protocol.errors import ERROR_CODES
from protocol.events import (
    AuditionStarted,
    AuditionStopped,
    Concepts,
    DownloadBegin,
    DownloadEnd,
    Error,
    JobAccepted,
    JobCancelledEvent,
    JobDone,
    JobFailed,
    JobPreview,
    JobProgress,
    Jobs,
    Manifest,
    Ok,
    Pong,
    ServerInfo,
    Session,
    Sessions,
    UploadDone,
    UploadReady,
)
from protocol.records import (
    PROTOCOL_VERSION,
    SAMPLE_RATE,
    STAGES,
    AudioDevice,
    ConceptInfo,
    ConceptMethod,
    JobInfo,
    JobKind,
    JobState,
    Limits,
    ModelInfo,
    OutputFormat,
    Region,
    RegionUnit,
    SampleFormat,
    SessionInfo,
    StemState,
    Take,
    TakeSource,
)
from protocol.requests import (
    AuditionPlay,
    AuditionStop,
    ConceptDelete,
    ConceptList,
    ConceptTrain,
    Continue,
    Download,
    Generate,
    Inpaint,
    JobCancel,
    JobList,
    Keep,
    ManifestGet,
    Ping,
    ServerInfoRequest,
    SessionCreate,
    SessionGet,
    SessionList,
    SessionUpdate,
    TakeSelect,
    UploadBegin,
    UploadEnd,
    UploadPath,
)

#: request type -> the event types that may answer it directly (besides ``error``)
REPLIES: dict[str, tuple[str, ...]] = {
    "ping": ("pong",),
    "server.info": ("server",),
    "session.create": ("session",),
    "session.update": ("session",),
    "session.get": ("session",),
    "session.list": ("sessions",),
    "keep": ("session",),
    "take.select": ("session",),
    "generate": ("job.accepted",),
    "inpaint": ("job.accepted",),
    "continue": ("job.accepted",),
    "upload.begin": ("upload.ready",),
    "upload.end": ("upload.done",),
    "upload.path": ("upload.done",),
    "download": ("download.begin",),
    "take.manifest": ("manifest",),
    "audition.play": ("audition.started",),
    "audition.stop": ("ok",),
    "job.list": ("jobs",),
    "job.cancel": ("ok",),
    "concept.train": ("job.accepted",),
    "concept.list": ("concepts",),
    "concept.delete": ("ok",),
}

__all__ = [
    "PROTOCOL_VERSION", "SAMPLE_RATE", "STAGES", "ERROR_CODES", "MESSAGE_TYPES", "REQUESTS", "EVENTS", "REPLIES",
    "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_STEPS", "Message", "Region", "Take", "StemState", "SessionInfo", "JobInfo",
    "ConceptInfo", "ModelInfo", "Limits", "AudioDevice", "TakeSource", "RegionUnit", "SampleFormat", "OutputFormat",
    "JobKind", "JobState", "ConceptMethod",
    # requests
    "Ping", "ServerInfoRequest", "SessionCreate", "SessionUpdate", "SessionGet", "SessionList", "Keep",
    "TakeSelect", "Generate", "Inpaint", "Continue", "UploadBegin", "UploadEnd", "UploadPath", "Download",
    "ManifestGet", "AuditionPlay", "AuditionStop", "JobList", "JobCancel", "ConceptTrain", "ConceptList",
    "ConceptDelete",
    # events
    "Pong", "Ok", "ServerInfo", "Session", "Sessions", "JobAccepted", "JobProgress", "JobPreview", "JobDone",
    "JobFailed", "JobCancelledEvent", "Jobs", "UploadReady", "UploadDone", "DownloadBegin", "DownloadEnd",
    "Manifest", "AuditionStarted", "AuditionStopped", "Concepts", "Error",
]
