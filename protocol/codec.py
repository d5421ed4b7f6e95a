"""JSON codec for WebSocket text frames: ``encode(msg) -> str`` and ``decode(text) -> Message``.

Wire form: one JSON object ``{"v": 1, "type": "<type>", ...fields}``. Decoding is strict and
checks in this order, raising (codes in brackets):

1. size: more than ``max_bytes`` UTF-8 bytes -> :class:`MessageTooLarge` [message_too_large]
2. syntax: not UTF-8, not JSON, not an object, NaN/Infinity literals -> :class:`MalformedMessage`
3. ``v``: missing or not the integer 1 -> :class:`UnsupportedVersion` [unsupported_version]
4. ``type``: missing, not a string or not known -> :class:`UnknownMessageType`
5. fields: unknown, missing or mistyped fields, out-of-range values -> :class:`InvalidArgument`
   naming the field (``details.field``, e.g. ``"generate.region.start"``).

:func:`request_id` recovers a usable ``id`` from text that failed to decode, so the daemon can
still echo it in the ``error`` event.
"""

from __future__ import annotations

import json
from typing import Any

from protocol.convert import record_from_dict, record_to_dict
from protocol.errors import InvalidArgument, MalformedMessage, MessageTooLarge, UnknownMessageType, UnsupportedVersion
from protocol.messages import EVENTS, MESSAGE_TYPES, PROTOCOL_VERSION, REQUESTS, Message

#: default limit of one JSON message (the daemon may configure its own: server.info limits)
MAX_MESSAGE_BYTES = 1 << 20

_ENVELOPE = frozenset({"v", "type"})


def _reject_constant(name: str) -> Any:
    raise MalformedMessage(f"JSON constant {name} is not allowed (numbers must be finite)")


def to_dict(msg: Message) -> dict[str, Any]:
    """The JSON object of ``msg`` (envelope first, ``None`` fields omitted)."""
    if not isinstance(msg, Message) or not msg.TYPE:
        raise InvalidArgument(f"not a protocol message: {type(msg).__name__}")
    return {"v": PROTOCOL_VERSION, "type": msg.TYPE, **record_to_dict(msg)}


def encode(msg: Message) -> str:
    """Compact JSON text for a WebSocket text frame."""
    return json.dumps(to_dict(msg), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Steps 1-2: size and JSON syntax. Returns the raw object."""
    size = len(text) if isinstance(text, (bytes, bytearray)) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise MessageTooLarge(f"message of {size} bytes exceeds the limit of {max_bytes} bytes",
                              size=size, limit=max_bytes)
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"message is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedMessage("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedMessage(f"a message must be a JSON object, got {type(data).__name__}")
    return data


def from_dict(data: dict[str, Any], allowed: dict[str, type[Message]] | None = None) -> Message:
    """Steps 3-5 on an already parsed object. ``allowed`` restricts the accepted types."""
    if "v" not in data:
        raise UnsupportedVersion(f'missing protocol version "v" (this server speaks v{PROTOCOL_VERSION})',
                                 supported=[PROTOCOL_VERSION])
    v = data["v"]
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {v!r} is not supported (this server speaks v{PROTOCOL_VERSION})",
                                 supported=[PROTOCOL_VERSION])
    kind = data.get("type")
    if not isinstance(kind, str):
        raise UnknownMessageType(f'missing or non-string message "type": {kind!r}')
    table = MESSAGE_TYPES if allowed is None else allowed
    cls = table.get(kind)
    if cls is None:
        known = ", ".join(sorted(table))
        raise UnknownMessageType(f"unknown message type {kind!r} (known: {known})", type=kind)
    return record_from_dict(cls, data, kind, ignore=_ENVELOPE)


def decode(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES,
           allowed: dict[str, type[Message]] | None = None) -> Message:
    """Decode one JSON text frame into its message dataclass (strict; see the module docstring)."""
    return from_dict(parse(text, max_bytes), allowed)


def decode_request(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Server side: only request types are accepted (an event type is an unknown message type)."""
    return decode(text, max_bytes, REQUESTS)


def decode_event(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Client side: only event types are accepted."""
    return decode(text, max_bytes, EVENTS)


def request_id(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> str | int | None:
    """Best effort: the ``id`` of a message that failed to decode (None when unreadable)."""
    try:
        data = parse(text, max_bytes)
    except Exception:
        return None
    rid = data.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None
    return rid


def request_type(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> str | None:
    """Best effort: the ``type`` of a message that failed to decode."""
    try:
        data = parse(text, max_bytes)
    except Exception:
        return None
    kind = data.get("type")
    return kind if isinstance(kind, str) else None
