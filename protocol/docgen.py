"""Generated reference sections of ``docs/protocol.md``: message catalogue, OSC table, error codes.

The hand-written document holds markers ``<!-- BEGIN GENERATED: name -->`` ... ``<!-- END GENERATED:
name -->``; :func:`render_doc` replaces what lies between them, so the tables cannot drift from
the code. Run through ``python -m protocol.schema --out docs/schema --doc docs/protocol.md``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

from protocol.convert import field_types, required_fields, to_json_value, type_name
from protocol.errors import ERROR_CODES, StemforgeError
from protocol.examples import EXAMPLES
from protocol.messages import EVENTS, REPLIES, REQUESTS, Message
from protocol.osc import OSC_ADDRESSES
from protocol.records import AudioDevice, ConceptInfo, JobInfo, Limits, ModelInfo, Region, SessionInfo, StemState, Take

_MARK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)
RECORDS = (Region, Take, StemState, SessionInfo, JobInfo, ConceptInfo, ModelInfo, Limits, AudioDevice)


def _doc(cls: type) -> str:
    text = inspect.getdoc(cls) or ""
    if (cls is not Message and text == inspect.getdoc(Message)) or text.startswith(cls.__name__ + "("):
        return ""  # inherited, or the signature dataclasses writes when there is no docstring
    return text


_FIELD_COMMENT = re.compile(r"^\s+(\w+): [^#]*#\s*(.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in the class source (and its bases'), for the docs."""
    out: dict[str, str] = {"id": "client request id, echoed in replies"} if issubclass(cls, Message) else {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        for line in inspect.getsource(klass).splitlines():
            match = _FIELD_COMMENT.match(line)
            if match:
                out[match.group(1)] = match.group(2).strip()
    return out


def _fields_table(cls: type) -> list[str]:
    hints = field_types(cls)
    if not hints:
        return []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    comments = field_comments(cls)
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, tp in hints.items():
        if name in required_fields(cls):
            default = "**required**"
        else:
            d = fields[name].default
            default = "omitted" if d is None else f"`{json.dumps(to_json_value(d))}`"
        meaning = comments.get(name, "").replace("|", "/").replace("<", "&lt;")
        rows.append(f"| `{name}` | {type_name(tp).replace('|', '/')} | {default} | {meaning} |")
    return rows + [""]


def _message_section(cls: type[Message]) -> list[str]:
    out = [f"#### `{cls.TYPE}` ({cls.__name__})", ""]
    doc = _doc(cls)
    if doc:
        out += [doc, ""]
    if cls.KIND == "request":
        replies = ", ".join(f"`{r}`" for r in REPLIES[cls.TYPE])
        out += [f"Replies: {replies} (or `error`).", ""]
    out += _fields_table(cls)
    example = json.dumps({"v": 1, "type": cls.TYPE, **to_json_value(EXAMPLES[cls.TYPE])}, ensure_ascii=False)
    out += ["```json", example, "```", ""]
    return out


def render_messages() -> str:
    out = ["### Requests (client -> daemon)", ""]
    for _, cls in sorted(REQUESTS.items()):
        out += _message_section(cls)
    out += ["### Events (daemon -> client)", ""]
    for _, cls in sorted(EVENTS.items()):
        out += _message_section(cls)
    out += ["### Records (inside messages)", ""]
    for rec in RECORDS:
        out += [f"#### {rec.__name__}", ""]
        doc = _doc(rec)
        if doc:
            out += [doc, ""]
        out += _fields_table(rec)
    return "\n".join(out)


def render_osc() -> str:
    out = ["| address | direction | arguments | message | replies |", "|---|---|---|---|---|"]
    for spec in OSC_ADDRESSES.values():
        replies = ", ".join(f"`{r}`" for r in spec.replies)
        sig = spec.signature().replace("|", "/") or "(none)"
        out.append(f"| `{spec.address}` | {spec.direction} | `{sig}` | `{spec.message_type}` | {replies} |")
    out += ["", "Argument notes:", ""]
    for spec in OSC_ADDRESSES.values():
        notes = [f"`{a.name}`: {a.doc}" for a in (*spec.args, *spec.group) if a.doc]
        if spec.variadic is not None and spec.variadic.doc:
            notes.append(f"`{spec.variadic.name} ...`: {spec.variadic.doc}")
        if notes or spec.doc:
            out.append(f"- `{spec.address}`" + (f" ({spec.doc})" if spec.doc else "")
                       + (": " + "; ".join(notes) if notes else ""))
    return "\n".join(out) + "\n"


#: what each wire code means to a client (codes without an entry show an empty cell)
MEANINGS = {
    "internal": "unexpected failure inside the daemon (a bug); the message says what",
    "protocol_error": "base of the wire-format errors",
    "malformed_message": "not UTF-8 / not JSON / not an object; corrupt binary frame (CRC, length, magic)",
    "unsupported_version": '"v" missing or not 1; binary frame version not 1',
    "unknown_message_type": "unknown JSON \"type\" or OSC address",
    "invalid_argument": "missing, unknown, mistyped or out-of-range field; `details.field` names it",
    "message_too_large": "JSON message or binary frame over the limit (`details.size`, `details.limit`)",
    "access_denied": "base of the access errors",
    "unauthorized": "missing or wrong token on the WebSocket handshake",
    "forbidden_origin": "browser Origin (or Host) not allowed",
    "path_not_allowed": "a host path outside the configured allowed folders",
    "limit_exceeded": "too many connections, queued jobs, uploads or frames",
    "not_found": "base of the unknown-id errors",
    "unknown_session": "no session with that id",
    "unknown_take": "no take with that id (in that session)",
    "unknown_job": "no job with that id",
    "unknown_stem": "stem not in the session / model",
    "unknown_concept": "a `<name>` in a prompt, or a delete, names no concept",
    "audio_error": "base of the audio errors",
    "invalid_audio": "unreadable or corrupt audio file, wrong shape or channel count",
    "non_finite_audio": "NaN or Inf samples",
    "silent_audio": "audio is silent where sound is needed (e.g. concept references)",
    "invalid_region": "region empty, negative, past the end, or malformed (see Regions)",
    "model_error": "base of the model errors",
    "checkpoint_not_found": "model or checkpoint path / id not found",
    "config_mismatch": "checkpoint or concept does not fit the loaded model",
    "concept_error": "concept exists already, wrong base model, too little audio",
    "cancelled": "the job was cancelled (`job.cancelled`)",
    "worker_crashed": "the engine worker process died during the job (it is restarted)",
    "audio_device_unavailable": "no audio output device / PortAudio missing / device busy",
}


def render_errors() -> str:
    out = ["| code | exception | parent | meaning |", "|---|---|---|---|"]
    for code, cls in ERROR_CODES.items():
        parent = cls.__mro__[1].__name__ if cls is not StemforgeError else "Exception"
        out.append(f"| `{code}` | `{cls.__name__}` | `{parent}` | {MEANINGS.get(code, '')} |")
    return "\n".join(out) + "\n"


SECTIONS = {"messages": render_messages, "osc": render_osc, "errors": render_errors}


def render_doc(text: str) -> str:
    """Replace every generated section of ``text``; unknown section names raise KeyError."""
    def sub(match: re.Match[str]) -> str:
        body = SECTIONS[match.group(2)]()
        return match.group(1) + body.rstrip("\n") + "\n" + match.group(4)

    return _MARK.sub(sub, text)
