"""The OSC address space of protocol v1, as data, and (address, args) <-> message conversion.

No OSC byte encoding here: the daemon and clients hand ``(address, args)`` to python-osc (or
liblo, Max's ``udpsend``). Argument type tags: ``i`` int32, ``f`` float (an ``i`` or a 64-bit ``d``
is accepted too; send positions in samples as ``i`` and long positions in seconds as ``d``, since a
32-bit float is off by a sample past ~170 s), ``s`` string. Optional arguments are trailing and may
be left out; their default stands. OSC has no null: the documented sentinels (``""``, ``-1``, ``0``)
mean "not given". Audio never travels over OSC: replies carry host file paths.

``OSC_ADDRESSES`` lists every address with its arguments; :func:`osc_to_message` and
:func:`message_to_osc` convert, raising :class:`UnknownMessageType` for an unknown address and
:class:`InvalidArgument` (naming the argument) for a wrong count or type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol import messages as m
from protocol.errors import InvalidArgument, UnknownMessageType
from protocol.records import ModelInfo, Region, SessionInfo, Take

PREFIX = "/stemforge"
_TAG_NAMES = {"i": "int32", "f": "float", "s": "string"}


@dataclass(frozen=True)
class OscArg:
    name: str
    tag: str  # "i" | "f" | "s"
    doc: str = ""
    default: Any = None  # value when left out; None = required


@dataclass(frozen=True)
class OscAddress:
    address: str
    direction: str  # "request" (to the daemon) | "reply" (from the daemon)
    message_type: str  # the protocol message it maps to
    args: tuple[OscArg, ...]
    doc: str = ""
    replies: tuple[str, ...] = ()  # reply addresses (requests only)
    group: tuple[OscArg, ...] = ()  # repeated ``count`` times after ``args`` (job/done)
    variadic: OscArg | None = None  # one or more trailing arguments of this kind

    @property
    def required(self) -> int:
        return sum(1 for a in self.args if a.default is None)

    def signature(self) -> str:
        parts = [f"{a.tag}:{a.name}" if a.default is None else f"[{a.tag}:{a.name}={a.default!r}]" for a in self.args]
        if self.group:
            parts.append("count x (" + " ".join(f"{a.tag}:{a.name}" for a in self.group) + ")")
        if self.variadic:
            parts.append(f"{self.variadic.tag}:{self.variadic.name} ...")
        return " ".join(parts)


def _a(name: str, tag: str, doc: str = "", default: Any = None) -> OscArg:
    return OscArg(name, tag, doc, default)


_SESSION = _a("session_id", "s", '"" = the default session')
_REGION = (_a("unit", "s", '"seconds" | "samples" | "beats" | "bars"; "" = whole session', ""),
           _a("start", "f", "region start in unit (bars: whole bars, 1-based)", 0.0),
           _a("end", "f", "region end (exclusive)", 0.0))
_GEN_TAIL = (_a("seed", "i", "-1 = random", -1), _a("steps", "i", "0 = model default", 0),
             _a("cfg", "f", "negative = model default", -1.0))
_TAKE_GROUP = (_a("stem", "s"), _a("take_id", "s"), _a("path", "s", "WAV on the daemon's host"),
               _a("start_sample", "i", "timeline position at 48 kHz"), _a("frames", "i"))

_SPECS: list[OscAddress] = [
    OscAddress(f"{PREFIX}/ping", "request", "ping", (_a("id", "s", "echoed in the pong", ""),),
               "liveness check", (f"{PREFIX}/pong",)),
    OscAddress(f"{PREFIX}/server/info", "request", "server.info", (), "daemon and model", (f"{PREFIX}/server",)),
    OscAddress(f"{PREFIX}/session/create", "request", "session.create",
               (_a("name", "s"), _a("bpm", "f", "", 120.0), _a("numerator", "i", "", 4),
                _a("denominator", "i", "", 4), _a("length", "f", "", 30.0),
                _a("length_unit", "s", "seconds | samples | beats | bars", "seconds")),
               "create a session", (f"{PREFIX}/session",)),
    OscAddress(f"{PREFIX}/session/get", "request", "session.get", (_a("session_id", "s", "", ""),),
               "tempo, time signature, length", (f"{PREFIX}/session",)),
    OscAddress(f"{PREFIX}/generate", "request", "generate",
               (_SESSION, _a("prompt", "s"), _a("stems", "s", 'comma-separated; "" = every stem not kept'),
                *_REGION, *_GEN_TAIL),
               "generate stems given the session's kept stems", (f"{PREFIX}/job/accepted",)),
    OscAddress(f"{PREFIX}/inpaint", "request", "inpaint",
               (_SESSION, _a("prompt", "s"), _a("stems", "s", "comma-separated, at least one"),
                _a("unit", "s", "seconds | samples | beats | bars"), _a("start", "f"), _a("end", "f"),
                *_GEN_TAIL),
               "regenerate stems inside a region of the active takes", (f"{PREFIX}/job/accepted",)),
    OscAddress(f"{PREFIX}/continue", "request", "continue",
               (_SESSION, _a("prompt", "s"), _a("seconds", "f"), _a("stems", "s", '"" = every stem', ""),
                *_GEN_TAIL),
               "extend the session", (f"{PREFIX}/job/accepted",)),
    OscAddress(f"{PREFIX}/keep", "request", "keep",
               (_SESSION, _a("stem", "s"), _a("take_id", "s", '"" = the active take', ""),
                _a("keep", "i", "1 keep, 0 unkeep", 1)),
               "keep (or unkeep) a stem for the next generate", (f"{PREFIX}/session",)),
    OscAddress(f"{PREFIX}/audition/play", "request", "audition.play",
               (_SESSION, _a("take_id", "s", '"" or "mix" = the mix', ""),
                _a("unit", "s", 'loop region unit; "" = no loop', ""),
                _a("start", "f", "loop start", 0.0), _a("end", "f", "loop end", 0.0),
                _a("device", "s", '"" = default output', "")),
               "play on the host's audio output (optional loop region)", (f"{PREFIX}/audition/started",)),
    OscAddress(f"{PREFIX}/audition/stop", "request", "audition.stop",
               (_a("audition_id", "s", '"" = all', ""),), "stop playback", (f"{PREFIX}/ok",)),
    OscAddress(f"{PREFIX}/job/cancel", "request", "job.cancel", (_a("job_id", "s"),), "cancel a job",
               (f"{PREFIX}/ok", f"{PREFIX}/job/cancelled")),
    OscAddress(f"{PREFIX}/upload/path", "request", "upload.path",
               (_SESSION, _a("stem", "s"), _a("path", "s", "inside an allowed folder"),
                _a("start_sample", "i", "", 0)),
               "a host audio file becomes a take", (f"{PREFIX}/upload/done",)),
    OscAddress(f"{PREFIX}/concept/train", "request", "concept.train",
               (_a("name", "s"), _a("method", "s", '"pivotal" | "textual-inversion"; "" = pivotal'),
                _a("steps", "i", "0 = default")),
               "train a concept from host files", (f"{PREFIX}/job/accepted",),
               variadic=_a("path", "s", "reference audio inside an allowed folder")),
    # ---- replies ----
    OscAddress(f"{PREFIX}/pong", "reply", "pong", (_a("id", "s", "the ping's id", ""),)),
    OscAddress(f"{PREFIX}/server", "reply", "server",
               (_a("version", "s"), _a("model", "s"), _a("model_hash", "s"), _a("stems", "s", "comma-separated"),
                _a("sample_rate", "i"), _a("protocol", "i"))),
    OscAddress(f"{PREFIX}/session", "reply", "session",
               (_a("session_id", "s"), _a("name", "s"), _a("bpm", "f"), _a("numerator", "i"),
                _a("denominator", "i"), _a("length_samples", "i"))),
    OscAddress(f"{PREFIX}/job/accepted", "reply", "job.accepted",
               (_a("job_id", "s"), _a("kind", "s"), _a("session_id", "s", '"" = none'), _a("seed", "i", "-1 = none"))),
    OscAddress(f"{PREFIX}/job/progress", "reply", "job.progress",
               (_a("job_id", "s"), _a("step", "i"), _a("total", "i"), _a("stage", "s"))),
    OscAddress(f"{PREFIX}/job/done", "reply", "job.done",
               (_a("job_id", "s"), _a("session_id", "s"), _a("count", "i", "number of stems that follow")),
               "one group of five arguments per stem", group=_TAKE_GROUP),
    OscAddress(f"{PREFIX}/job/failed", "reply", "job.failed", (_a("job_id", "s"), _a("code", "s"), _a("message", "s"))),
    OscAddress(f"{PREFIX}/job/cancelled", "reply", "job.cancelled", (_a("job_id", "s"),)),
    OscAddress(f"{PREFIX}/upload/done", "reply", "upload.done", _TAKE_GROUP),
    OscAddress(f"{PREFIX}/audition/started", "reply", "audition.started",
               (_a("audition_id", "s"), _a("device", "s"))),
    OscAddress(f"{PREFIX}/audition/stopped", "reply", "audition.stopped", (_a("audition_id", "s"), _a("reason", "s"))),
    OscAddress(f"{PREFIX}/ok", "reply", "ok", (_a("request", "s", "the request type acknowledged"),)),
    OscAddress(f"{PREFIX}/error", "reply", "error",
               (_a("code", "s"), _a("message", "s"), _a("in_reply_to", "s", "the request address", ""))),
]

#: address -> spec
OSC_ADDRESSES: dict[str, OscAddress] = {s.address: s for s in _SPECS}
#: protocol message type -> OSC address
ADDRESS_OF_TYPE: dict[str, str] = {s.message_type: s.address for s in _SPECS}


# ---- argument checking -----------------------------------------------------------------------------------
def _check_arg(spec: OscAddress, arg: OscArg, position: int, value: Any) -> Any:
    ok = ((arg.tag == "s" and isinstance(value, str))
          or (arg.tag == "i" and isinstance(value, int) and not isinstance(value, bool))
          or (arg.tag == "f" and isinstance(value, (int, float)) and not isinstance(value, bool)))
    if not ok:
        where = f"{spec.address}.{arg.name}"
        raise InvalidArgument(f"{spec.address} argument {position + 1} ({arg.name}): expected {arg.tag} "
                              f"({_TAG_NAMES[arg.tag]}), got {type(value).__name__} {value!r}", field=where)
    if arg.tag == "i" and not -(2**31) <= value < 2**31:
        raise InvalidArgument(f"{spec.address} argument {position + 1} ({arg.name}): {value} does not fit int32",
                              field=f"{spec.address}.{arg.name}")
    return float(value) if arg.tag == "f" else value


def parse_args(spec: OscAddress, args: Sequence[Any]) -> tuple[dict[str, Any], list[Any]]:
    """Type-check ``args`` against ``spec``; returns named values (defaults filled) and the rest
    (the repeated groups or variadic arguments)."""
    args = list(args)
    n_fixed = len(spec.args)
    if len(args) < spec.required:
        missing = spec.args[len(args)]
        raise InvalidArgument(f"{spec.address} takes {spec.signature() or 'no arguments'}: missing argument "
                              f"{len(args) + 1} ({missing.name})", field=f"{spec.address}.{missing.name}")
    if len(args) > n_fixed and not (spec.group or spec.variadic):
        raise InvalidArgument(f"{spec.address} takes {spec.signature() or 'no arguments'}: got {len(args)} arguments",
                              field=spec.address)
    values = {a.name: (_check_arg(spec, a, i, args[i]) if i < len(args) else a.default)
              for i, a in enumerate(spec.args)}
    rest = args[n_fixed:]
    if spec.group:
        count = values["count"]
        if count < 0 or len(rest) != count * len(spec.group):
            raise InvalidArgument(f"{spec.address}: count {count} announces {count * len(spec.group)} group "
                                  f"arguments, got {len(rest)}", field=f"{spec.address}.count")
        rest = [_check_arg(spec, spec.group[i % len(spec.group)], n_fixed + i, v) for i, v in enumerate(rest)]
    elif spec.variadic:
        if not rest:
            raise InvalidArgument(f"{spec.address} takes {spec.signature()}: give at least one {spec.variadic.name}",
                                  field=f"{spec.address}.{spec.variadic.name}")
        rest = [_check_arg(spec, spec.variadic, n_fixed + i, v) for i, v in enumerate(rest)]
    return values, rest


def _opt(value: Any, none: Any) -> Any:
    """OSC sentinel -> None."""
    return None if value == none else value


def _stems(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _region(v: dict[str, Any]) -> Region | None:
    if not v["unit"]:
        return None
    return Region(unit=v["unit"], start=v["start"], end=v["end"])


def _required_region(v: dict[str, Any], address: str) -> Region:
    region = _region(v)
    if region is None:
        where = f"{PREFIX}/{address}.unit"
        raise InvalidArgument(f"{where}: a region is required (seconds, samples, beats or bars)", field=where)
    return region


def _region_args(region: Region | None) -> list[Any]:
    if region is None:
        return ["", 0.0, 0.0]
    if region.unit == "bars" and ((region.start_beat or 1) != 1 or (region.end_beat or 1) != 1):
        raise InvalidArgument("OSC regions in bars are whole bars; use unit beats for a position inside a bar",
                              field="region")
    if region.unit == "samples":
        return [region.unit, int(region.start), int(region.end)]
    return [region.unit, float(region.start), float(region.end)]


def _gen_tail(msg: Any) -> list[Any]:
    if msg.seed is not None and msg.seed >= 2**31:
        raise InvalidArgument(f"seed {msg.seed} does not fit an OSC int32 (use the WebSocket)", field="seed")
    return [-1 if msg.seed is None else msg.seed, msg.steps or 0, -1.0 if msg.cfg is None else float(msg.cfg)]


def _gen_kwargs(v: dict[str, Any]) -> dict[str, Any]:
    cfg = None if v["cfg"] < 0 else v["cfg"]
    return dict(session_id=v["session_id"] or None, prompt=v["prompt"], seed=_opt(v["seed"], -1),
                steps=_opt(v["steps"], 0), cfg=cfg)


def _take(values: Sequence[Any], job_id: str | None = None) -> Take:
    stem, take_id, path, start, frames = values
    return Take(stem=stem, take_id=take_id, path=path, start_sample=start, frames=frames, job_id=job_id)


def _take_args(t: Take) -> list[Any]:
    return [t.stem, t.take_id, t.path, t.start_sample, t.frames]


# ---- per-address conversion: (named values, rest) -> message, and message -> args --------------------------
_Parse = Callable[[dict[str, Any], list[Any]], m.Message]
_Build = Callable[[Any], list[Any]]

_CONVERT: dict[str, tuple[_Parse, _Build]] = {
    "ping": (lambda v, r: m.Ping(id=v["id"] or None), lambda x: [_id(x)]),
    "server.info": (lambda v, r: m.ServerInfoRequest(), lambda x: []),
    "session.create": (
        lambda v, r: m.SessionCreate(name=v["name"], bpm=v["bpm"], time_signature=(v["numerator"], v["denominator"]),
                                     length=v["length"], length_unit=v["length_unit"]),
        lambda x: [x.name, float(x.bpm), *x.time_signature, float(x.length), x.length_unit]),
    "session.get": (lambda v, r: m.SessionGet(session_id=v["session_id"] or None), lambda x: [x.session_id or ""]),
    "generate": (
        lambda v, r: m.Generate(**_gen_kwargs(v), stems=_stems(v["stems"]), region=_region(v)),
        lambda x: [x.session_id or "", x.prompt, ",".join(x.stems), *_region_args(x.region), *_gen_tail(x)]),
    "inpaint": (
        lambda v, r: m.Inpaint(**_gen_kwargs(v), stems=_stems(v["stems"]), region=_required_region(v, "inpaint")),
        lambda x: [x.session_id or "", x.prompt, ",".join(x.stems), *_region_args(x.region), *_gen_tail(x)]),
    "continue": (
        lambda v, r: m.Continue(**_gen_kwargs(v), seconds=v["seconds"], stems=_stems(v["stems"])),
        lambda x: [x.session_id or "", x.prompt, float(x.seconds), ",".join(x.stems), *_gen_tail(x)]),
    "keep": (
        lambda v, r: m.Keep(session_id=v["session_id"] or None, stem=v["stem"], take_id=v["take_id"] or None,
                            keep=bool(v["keep"])),
        lambda x: [x.session_id or "", x.stem, x.take_id or "", int(x.keep)]),
    "audition.play": (
        lambda v, r: m.AuditionPlay(session_id=v["session_id"] or None,
                                    take_id=None if v["take_id"] in ("", "mix") else v["take_id"],
                                    loop=_region(v), device=v["device"] or None),
        lambda x: [x.session_id or "", x.take_id or "", *_region_args(x.loop),
                   "" if x.device is None else str(x.device)]),
    "audition.stop": (lambda v, r: m.AuditionStop(audition_id=v["audition_id"] or None),
                      lambda x: [x.audition_id or ""]),
    "job.cancel": (lambda v, r: m.JobCancel(job_id=v["job_id"]), lambda x: [x.job_id]),
    "upload.path": (
        lambda v, r: m.UploadPath(session_id=v["session_id"] or None, stem=v["stem"], path=v["path"],
                                  start_sample=v["start_sample"]),
        lambda x: [x.session_id or "", x.stem, x.path, x.start_sample]),
    "concept.train": (
        lambda v, r: m.ConceptTrain(name=v["name"], method=v["method"] or "pivotal", steps=_opt(v["steps"], 0),
                                    paths=tuple(r)),
        lambda x: [x.name, x.method, x.steps or 0, *x.paths]),
    # replies
    "pong": (lambda v, r: m.Pong(id=v["id"] or None), lambda x: [_id(x)]),
    "server": (
        lambda v, r: m.ServerInfo(version=v["version"], protocol=v["protocol"], sample_rate=v["sample_rate"],
                                  model=ModelInfo(name=v["model"], hash=v["model_hash"], stems=_stems(v["stems"]))),
        lambda x: [x.version, x.model.name, x.model.hash, ",".join(x.model.stems), x.sample_rate, x.protocol]),
    "session": (
        lambda v, r: m.Session(session=SessionInfo(session_id=v["session_id"], name=v["name"], bpm=v["bpm"],
                                                   time_signature=(v["numerator"], v["denominator"]),
                                                   length_samples=v["length_samples"])),
        lambda x: [x.session.session_id, x.session.name, float(x.session.bpm), *x.session.time_signature,
                   x.session.length_samples]),
    "job.accepted": (
        lambda v, r: m.JobAccepted(job_id=v["job_id"], kind=_kind(v["kind"]), session_id=v["session_id"] or None,
                                   seed=_opt(v["seed"], -1)),
        lambda x: [x.job_id, x.kind, x.session_id or "", -1 if x.seed is None else _int32(x.seed)]),
    "job.progress": (
        lambda v, r: m.JobProgress(job_id=v["job_id"], step=v["step"], total=v["total"], stage=v["stage"]),
        lambda x: [x.job_id, x.step, x.total, x.stage]),
    "job.done": (
        lambda v, r: m.JobDone(job_id=v["job_id"], session_id=v["session_id"] or None,
                               takes=tuple(_take(r[i:i + 5], v["job_id"]) for i in range(0, len(r), 5))),
        lambda x: [x.job_id, x.session_id or "", len(x.takes), *(a for t in x.takes for a in _take_args(t))]),
    "job.failed": (lambda v, r: m.JobFailed(job_id=v["job_id"], code=v["code"], message=v["message"]),
                   lambda x: [x.job_id, x.code, x.message]),
    "job.cancelled": (lambda v, r: m.JobCancelledEvent(job_id=v["job_id"]), lambda x: [x.job_id]),
    "upload.done": (lambda v, r: m.UploadDone(take=_take([v[a.name] for a in _TAKE_GROUP])),
                    lambda x: _take_args(_required_take(x))),
    "audition.started": (lambda v, r: m.AuditionStarted(audition_id=v["audition_id"], device=v["device"] or None),
                         lambda x: [x.audition_id, x.device or ""]),
    "audition.stopped": (lambda v, r: m.AuditionStopped(audition_id=v["audition_id"], reason=_reason(v["reason"])),
                         lambda x: [x.audition_id, x.reason]),
    "ok": (lambda v, r: m.Ok(request=v["request"]), lambda x: [x.request]),
    "error": (lambda v, r: m.Error(code=v["code"], message=v["message"], in_reply_to=v["in_reply_to"] or None),
              lambda x: [x.code, x.message, x.in_reply_to or ""]),
}
assert set(_CONVERT) == set(ADDRESS_OF_TYPE), set(_CONVERT) ^ set(ADDRESS_OF_TYPE)


def _id(msg: m.Message) -> str:
    return "" if msg.id is None else str(msg.id)


def _int32(value: int) -> int:
    return value if -(2**31) <= value < 2**31 else -1  # seeds past int32 are not representable over OSC


def _enum(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{where}: expected one of {', '.join(allowed)}, got {value!r}", field=where)
    return value


def _kind(value: str) -> Any:
    return _enum(value, ("generate", "inpaint", "continue", "concept.train"), f"{PREFIX}/job/accepted.kind")


def _reason(value: str) -> Any:
    return _enum(value, ("stopped", "ended", "error"), f"{PREFIX}/audition/stopped.reason")


def _required_take(msg: m.UploadDone) -> Take:
    if msg.take is None:
        raise InvalidArgument("upload.done without a take (a reference upload) has no OSC form", field="take")
    return msg.take


# ---- public API ------------------------------------------------------------------------------------------
def type_tags(args: Sequence[Any]) -> str:
    """OSC type tags of argument values as python-osc infers them (``int`` i, ``float`` f, ``str`` s), e.g.
    for ``oscsend``. :func:`message_to_osc` gives ``f`` arguments as floats, except region positions in
    samples, which are ints (exact past 2**24)."""
    tags = {int: "i", float: "f", str: "s"}
    try:
        return "".join(tags[type(a)] for a in args)
    except KeyError as exc:
        raise InvalidArgument(f"no OSC type tag for {exc.args[0].__name__} arguments") from None


def osc_to_message(address: str, args: Sequence[Any]) -> m.Message:
    """Convert a received OSC message (python-osc's ``address, *args``) into a protocol message."""
    spec = OSC_ADDRESSES.get(address)
    if spec is None:
        raise UnknownMessageType(f"unknown OSC address {address!r} (see docs/protocol.md)", address=address)
    values, rest = parse_args(spec, args)
    try:
        return _CONVERT[spec.message_type][0](values, rest)
    except InvalidArgument as exc:  # value checks of the message: name the OSC address
        raise InvalidArgument(f"{address}: {exc.message}", **exc.details) from None


def message_to_osc(msg: m.Message) -> tuple[str, tuple[Any, ...]]:
    """Convert a protocol message to ``(address, args)``. Trailing optional arguments that equal their
    default are left out (so ``Ping()`` is ``("/stemforge/ping", ())``). Fields OSC does not carry
    (e.g. a take's sha256) are dropped."""
    address = ADDRESS_OF_TYPE.get(msg.TYPE)
    if address is None:
        raise InvalidArgument(f"message type {msg.TYPE!r} has no OSC form (use the WebSocket)", field="type")
    spec = OSC_ADDRESSES[address]
    args = list(_CONVERT[msg.TYPE][1](msg))
    if not (spec.group or spec.variadic):
        while args and len(args) > spec.required and args[-1] == spec.args[len(args) - 1].default:
            args.pop()
    parse_args(spec, args)  # what we send is what we accept
    return address, tuple(args)
