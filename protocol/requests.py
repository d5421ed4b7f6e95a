"""Protocol v1 requests (client -> daemon). Import them from :mod:`protocol.messages`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from protocol.base import (MAX_CHORD_CHARS, MAX_PROMPT_CHARS, MAX_SEED, MAX_STEPS, Message, _nonempty, _request,
                           _stems)
from protocol.records import (
    SAMPLE_RATE,
    ConceptMethod,
    OutputFormat,
    Region,
    RegionUnit,
    SampleFormat,
    check,
    check_bpm,
    check_finite,
    check_time_signature,
)


@_request
@dataclass(frozen=True, kw_only=True)
class Ping(Message):
    """The fixed point: ``{"v": 1, "type": "ping"}`` is answered with ``pong``."""

    TYPE: ClassVar[str] = "ping"


@_request
@dataclass(frozen=True, kw_only=True)
class ServerInfoRequest(Message):
    TYPE: ClassVar[str] = "server.info"


@_request
@dataclass(frozen=True, kw_only=True)
class SessionCreate(Message):
    """Create a session. ``length`` is in ``length_unit`` (``bars`` = whole bars of the time signature)."""

    TYPE: ClassVar[str] = "session.create"
    name: str = ""
    bpm: float = 120.0  # quarter notes per minute
    time_signature: tuple[int, int] = (4, 4)
    length: float = 30.0
    length_unit: RegionUnit = "seconds"
    stems: tuple[str, ...] | None = None  # None = the model's stems

    def _check(self) -> None:
        check_bpm(self.bpm, "session.create.bpm")
        check_time_signature(self.time_signature, "session.create.time_signature")
        check_finite(self.length, "session.create.length")
        check(self.length > 0, "session.create.length", f"must be > 0, got {self.length}")
        if self.stems is not None:
            _stems(self.stems, "session.create.stems")


@_request
@dataclass(frozen=True, kw_only=True)
class SessionUpdate(Message):
    """Change tempo, time signature, length or name; ``None`` leaves a field as it is. Takes are kept."""

    TYPE: ClassVar[str] = "session.update"
    session_id: str
    name: str | None = None
    bpm: float | None = None
    time_signature: tuple[int, int] | None = None
    length: float | None = None
    length_unit: RegionUnit = "seconds"

    def _check(self) -> None:
        check_bpm(self.bpm, "session.update.bpm")
        if self.time_signature is not None:
            check_time_signature(self.time_signature, "session.update.time_signature")
        if self.length is not None:
            check_finite(self.length, "session.update.length")
            check(self.length > 0, "session.update.length", f"must be > 0, got {self.length}")


@_request
@dataclass(frozen=True, kw_only=True)
class SessionGet(Message):
    TYPE: ClassVar[str] = "session.get"
    session_id: str | None = None


@_request
@dataclass(frozen=True, kw_only=True)
class SessionList(Message):
    TYPE: ClassVar[str] = "session.list"


@_request
@dataclass(frozen=True, kw_only=True)
class Keep(Message):
    """Mark a stem as kept (given as context when the other stems are regenerated) or unkept.

    ``take_id`` also makes that take the stem's active take; ``None`` keeps the active take.
    """

    TYPE: ClassVar[str] = "keep"
    session_id: str | None = None
    stem: str
    take_id: str | None = None
    keep: bool = True

    def _check(self) -> None:
        _nonempty(self.stem, "keep.stem")


@_request
@dataclass(frozen=True, kw_only=True)
class TakeSelect(Message):
    """Make ``take_id`` the active take of its stem (switching takes; nothing is deleted)."""

    TYPE: ClassVar[str] = "take.select"
    session_id: str | None = None
    stem: str
    take_id: str

    def _check(self) -> None:
        _nonempty(self.stem, "take.select.stem")
        _nonempty(self.take_id, "take.select.take_id")


@dataclass(frozen=True, kw_only=True)
class _GenerationParams(Message):
    """Parameters shared by generate, inpaint and continue. ``None`` = the model's default."""

    session_id: str | None = None  # None = the daemon's default session
    prompt: str = ""  # may name concepts as <name>
    negative_prompt: str = ""  # what to steer away from (classifier-free guidance)
    seed: int | None = None  # None = random; the seed used is returned in job.accepted and job.done
    steps: int | None = None  # sampling steps; None = the model's default
    sampler: str | None = None  # e.g. "ddim", "dpmpp-2m" (server.info lists them)
    cfg: float | None = None  # classifier-free guidance scale
    bpm: float | None = None  # tempo written into the prompt, replacing one its text names; None = session tempo
    key: str | None = None  # e.g. "E minor", written into the prompt, replacing one its text names
    chords: str | None = None  # chord symbols from bar 1 ("Am F C G"); None = planned from the key; "none" = none
    chord_beats: float | None = None  # beats per chord of ``chords``; None = 4 (one a bar)
    chord_cfg: float | None = None  # guidance scale of the chords apart from the text's; None = the default (6)
    chroma_guidance: float | None = None  # how far sampling moves the tonal stems onto the chords; None = default
    format: OutputFormat = "pcm24"  # WAV subtype of the written takes

    def _check(self) -> None:
        t = self.TYPE
        check(len(self.prompt) <= MAX_PROMPT_CHARS, f"{t}.prompt", f"longer than {MAX_PROMPT_CHARS} characters")
        check(len(self.negative_prompt) <= MAX_PROMPT_CHARS, f"{t}.negative_prompt",
              f"longer than {MAX_PROMPT_CHARS} characters")
        if self.seed is not None:
            check(0 <= self.seed <= MAX_SEED, f"{t}.seed", f"must be in 0..2**63-1, got {self.seed}")
        if self.steps is not None:
            check(1 <= self.steps <= MAX_STEPS, f"{t}.steps", f"must be in 1..{MAX_STEPS}, got {self.steps}")
        if self.cfg is not None:
            check_finite(self.cfg, f"{t}.cfg")
            check(0.0 <= self.cfg <= 100.0, f"{t}.cfg", f"must be in 0..100, got {self.cfg}")
        if self.sampler is not None:
            _nonempty(self.sampler, f"{t}.sampler")
        check_bpm(self.bpm, f"{t}.bpm")
        if self.chords is not None:
            check(len(self.chords) <= MAX_CHORD_CHARS, f"{t}.chords", f"longer than {MAX_CHORD_CHARS} characters")
            check(self.chords.isprintable(), f"{t}.chords", "must be printable chord symbols")
        if self.chord_cfg is not None:
            check_finite(self.chord_cfg, f"{t}.chord_cfg")
            check(0.0 <= self.chord_cfg <= 100.0, f"{t}.chord_cfg", f"must be in 0..100, got {self.chord_cfg}")
        if self.chroma_guidance is not None:
            check_finite(self.chroma_guidance, f"{t}.chroma_guidance")
            check(0.0 <= self.chroma_guidance <= 10.0, f"{t}.chroma_guidance",
                  f"must be in 0..10, got {self.chroma_guidance}")
        if self.chord_beats is not None:
            check_finite(self.chord_beats, f"{t}.chord_beats")
            check(0.25 <= self.chord_beats <= 64, f"{t}.chord_beats", f"must be in 0.25..64, got {self.chord_beats}")


@_request
@dataclass(frozen=True, kw_only=True)
class Generate(_GenerationParams):
    """Generate ``stems`` over ``region`` given the ``keep`` takes as context (the co-composition loop).

    ``stems`` empty = every stem not kept. ``keep`` maps stem -> take id; ``None`` = the session's kept
    stems (their active takes); ``{}`` = nothing given. ``region`` ``None`` = the whole session length.
    """

    TYPE: ClassVar[str] = "generate"
    stems: tuple[str, ...] = ()  # stems to generate; empty = every stem not kept
    keep: dict[str, str] | None = None  # stem -> take id given as context; None = the session's kept stems
    region: Region | None = None  # where on the timeline; None = the whole session

    def _check(self) -> None:
        super()._check()
        _stems(self.stems, "generate.stems")
        if self.keep:
            clash = sorted(set(self.keep) & set(self.stems))
            check(not clash, "generate.keep", f"stems {clash} are both kept and generated")


@_request
@dataclass(frozen=True, kw_only=True)
class Inpaint(_GenerationParams):
    """Regenerate ``stems`` inside ``region`` only; outside it the source takes are kept sample for sample.

    ``sources`` maps stem -> take id for the inpainted stems and any context stems; ``None`` = the
    session's active takes.
    """

    TYPE: ClassVar[str] = "inpaint"
    stems: tuple[str, ...]  # stems to regenerate inside the region
    region: Region  # the part to regenerate; outside it the sources are kept exactly
    sources: dict[str, str] | None = None  # stem -> take id; None = the session's active takes

    def _check(self) -> None:
        super()._check()
        check(len(self.stems) > 0, "inpaint.stems", "name at least one stem to inpaint")
        _stems(self.stems, "inpaint.stems")


@_request
@dataclass(frozen=True, kw_only=True)
class Continue(_GenerationParams):
    """Extend the session by ``seconds`` after the end of the source takes (unidirectional mode).

    ``stems`` empty = every stem; ``sources`` as for inpaint. New takes start where the sources end.
    """

    TYPE: ClassVar[str] = "continue"
    seconds: float  # length of the continuation
    stems: tuple[str, ...] = ()  # empty = every stem
    sources: dict[str, str] | None = None  # stem -> take id to continue; None = the active takes

    def _check(self) -> None:
        super()._check()
        check_finite(self.seconds, "continue.seconds")
        check(0 < self.seconds <= 600, "continue.seconds", f"must be in (0, 600], got {self.seconds}")
        _stems(self.stems, "continue.stems")


@_request
@dataclass(frozen=True, kw_only=True)
class UploadBegin(Message):
    """Announce an upload of PCM audio; binary frames (``protocol.binary``, kind upload) follow.

    ``purpose`` ``take``: becomes a take of ``stem`` at ``start_sample``. ``reference``: reference
    audio for concept training (``stem`` may be None). ``sha256``: optional hex digest of all PCM
    payload bytes in chunk order, checked on ``upload.end``. Audio at another rate is resampled.
    """

    TYPE: ClassVar[str] = "upload.begin"
    session_id: str | None = None
    stem: str | None = None
    purpose: Literal["take", "reference"] = "take"
    name: str = ""  # original file name, for the manifest
    sample_rate: int = SAMPLE_RATE
    channels: int = 2
    sample_format: SampleFormat = "float32"
    frames: int
    total_chunks: int
    start_sample: int = 0
    sha256: str | None = None

    def _check(self) -> None:
        if self.purpose == "take":
            check(self.stem is not None, "upload.begin.stem", "required when purpose is 'take'")
        if self.stem is not None:
            _nonempty(self.stem, "upload.begin.stem")
        check(8000 <= self.sample_rate <= 384_000, "upload.begin.sample_rate",
              f"must be in 8000..384000, got {self.sample_rate}")
        check(self.channels in (1, 2), "upload.begin.channels", f"must be 1 or 2, got {self.channels}")
        check(self.frames > 0, "upload.begin.frames", f"must be > 0, got {self.frames}")
        check(1 <= self.total_chunks <= self.frames, "upload.begin.total_chunks",
              f"must be in 1..frames, got {self.total_chunks}")
        check(self.start_sample >= 0, "upload.begin.start_sample", f"must be >= 0, got {self.start_sample}")


@_request
@dataclass(frozen=True, kw_only=True)
class UploadEnd(Message):
    TYPE: ClassVar[str] = "upload.end"
    transfer_id: int


@_request
@dataclass(frozen=True, kw_only=True)
class UploadPath(Message):
    """Reference a WAV/FLAC file on the daemon's host as a take of ``stem`` (OSC ``/stemforge/upload/path``).

    The daemon accepts only paths inside its configured allowed folders (``path_not_allowed``)."""

    TYPE: ClassVar[str] = "upload.path"
    session_id: str | None = None
    stem: str
    path: str
    start_sample: int = 0

    def _check(self) -> None:
        _nonempty(self.stem, "upload.path.stem")
        check(bool(self.path), "upload.path.path", "must not be empty")
        check(self.start_sample >= 0, "upload.path.start_sample", f"must be >= 0, got {self.start_sample}")


@_request
@dataclass(frozen=True, kw_only=True)
class Download(Message):
    """Fetch a take's audio: ``download.begin``, then binary frames (kind download), then ``download.end``."""

    TYPE: ClassVar[str] = "download"
    take_id: str
    sample_format: SampleFormat = "float32"
    chunk_frames: int = SAMPLE_RATE  # frames per binary frame (the last one may be shorter)

    def _check(self) -> None:
        _nonempty(self.take_id, "download.take_id")
        check(1 <= self.chunk_frames <= SAMPLE_RATE * 10, "download.chunk_frames",
              f"must be in 1..480000, got {self.chunk_frames}")


@_request
@dataclass(frozen=True, kw_only=True)
class ManifestGet(Message):
    """Fetch a take's recall manifest (prompt, seed, model hash, parameters, source takes) as JSON."""

    TYPE: ClassVar[str] = "take.manifest"
    take_id: str

    def _check(self) -> None:
        _nonempty(self.take_id, "take.manifest.take_id")


@_request
@dataclass(frozen=True, kw_only=True)
class AuditionPlay(Message):
    """Play a take (or, with ``take_id`` None, the mix of the session's active takes).

    ``destination`` ``host``: the daemon's audio output ``device`` (name or index; None = default).
    ``client``: streamed to this WebSocket client as binary frames (kind stream). ``loop``: loop that
    region of the timeline until ``audition.stop``.
    """

    TYPE: ClassVar[str] = "audition.play"
    session_id: str | None = None
    take_id: str | None = None
    loop: Region | None = None
    device: str | int | None = None
    destination: Literal["host", "client"] = "host"
    sample_format: SampleFormat = "float32"  # client streams only


@_request
@dataclass(frozen=True, kw_only=True)
class AuditionStop(Message):
    TYPE: ClassVar[str] = "audition.stop"
    audition_id: str | None = None  # None = everything this client started


@_request
@dataclass(frozen=True, kw_only=True)
class JobList(Message):
    TYPE: ClassVar[str] = "job.list"
    session_id: str | None = None  # None = all sessions
    active_only: bool = False  # only queued and running jobs


@_request
@dataclass(frozen=True, kw_only=True)
class JobCancel(Message):
    TYPE: ClassVar[str] = "job.cancel"
    job_id: str

    def _check(self) -> None:
        _nonempty(self.job_id, "job.cancel.job_id")


@_request
@dataclass(frozen=True, kw_only=True)
class ConceptTrain(Message):
    """Teach the model a sound as ``<name>``; a queued job. Reference audio: takes, uploads
    (``upload.begin`` with purpose ``reference``: their ``reference_id``) or host paths inside the
    daemon's allowed folders."""

    TYPE: ClassVar[str] = "concept.train"
    name: str
    method: ConceptMethod = "pivotal"
    steps: int | None = None
    description: str = ""
    take_ids: tuple[str, ...] = ()
    reference_ids: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def _check(self) -> None:
        _nonempty(self.name, "concept.train.name")
        check(not set("<> \t\n") & set(self.name), "concept.train.name",
              f"must not contain spaces or angle brackets, got {self.name!r}")
        check(bool(self.take_ids or self.reference_ids or self.paths), "concept.train",
              "give reference audio in take_ids, reference_ids or paths")
        if self.steps is not None:
            check(1 <= self.steps <= 100_000, "concept.train.steps", f"must be in 1..100000, got {self.steps}")


@_request
@dataclass(frozen=True, kw_only=True)
class ConceptList(Message):
    TYPE: ClassVar[str] = "concept.list"


@_request
@dataclass(frozen=True, kw_only=True)
class ConceptDelete(Message):
    TYPE: ClassVar[str] = "concept.delete"
    name: str

    def _check(self) -> None:
        _nonempty(self.name, "concept.delete.name")
