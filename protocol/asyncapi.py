"""An AsyncAPI 3.0 document of the WebSocket API, generated from the message registries.

Written by ``python -m protocol.schema`` as ``docs/schema/asyncapi-v1.json``. Message payloads refer
to the definitions in ``stemforge-v1.schema.json`` beside it (JSON Schema draft 2020-12), so the
two never disagree; the binary audio frames are described as a binary message.
"""

from __future__ import annotations

import inspect
from typing import Any

from protocol.base import EVENTS, REQUESTS, Message
from protocol.messages import REPLIES, PROTOCOL_VERSION
from protocol.schema import def_name

SCHEMA_FILE = "stemforge-v1.schema.json"


def _key(kind: str) -> str:
    return kind.replace(".", "_")


def _summary(cls: type[Message]) -> str:
    text = inspect.getdoc(cls) or ""
    if text.startswith(cls.__name__ + "(") or text == inspect.getdoc(Message):
        return cls.__name__
    return " ".join(text.split("\n\n")[0].split())


def build_asyncapi() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for kind, cls in sorted({**REQUESTS, **EVENTS}.items()):
        messages[_key(kind)] = {
            "name": kind,
            "title": cls.__name__,
            "summary": _summary(cls),
            "contentType": "application/json",
            "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12",
                        "schema": {"$ref": f"{SCHEMA_FILE}#/$defs/{def_name(cls)}"}},
        }
    messages["audio_frame"] = {
        "name": "audio.frame",
        "title": "Binary audio frame",
        "summary": "32-byte header (magic SFAU, version, kind, format, channels, transfer id, chunk index, "
                   "total chunks, sample rate, frames, crc32) + interleaved little-endian PCM; see docs/protocol.md.",
        "contentType": "application/octet-stream",
        "payload": {"type": "string", "format": "binary"},
    }
    ref = "#/channels/daemon/messages/"
    frame = {"$ref": ref + "audio_frame"}
    operations: dict[str, Any] = {
        "sendRequest": {"action": "send", "channel": {"$ref": "#/channels/daemon"},
                        "summary": "A client request; answered as listed in each request's reply list.",
                        "messages": [{"$ref": ref + _key(k)} for k in sorted(REQUESTS)] + [frame]},
        "receiveEvent": {"action": "receive", "channel": {"$ref": "#/channels/daemon"},
                         "summary": "A daemon event: a reply (id echoed), a job event or an error.",
                         "messages": [{"$ref": ref + _key(k)} for k in sorted(EVENTS)] + [frame]},
    }
    for kind in sorted(REQUESTS):
        operations[f"request_{_key(kind)}"] = {
            "action": "send", "channel": {"$ref": "#/channels/daemon"},
            "messages": [{"$ref": ref + _key(kind)}],
            "reply": {"channel": {"$ref": "#/channels/daemon"},
                      "messages": [{"$ref": ref + _key(r)} for r in (*REPLIES[kind], "error")]},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Stemforge daemon", "version": f"{PROTOCOL_VERSION}.0.0",
                 "description": "Multi-track music generation for DAWs: JSON text frames {\"v\": 1, \"type\": ...} "
                                "and binary audio frames over one WebSocket. The token goes in ?token= or an "
                                "Authorization: Bearer header. See docs/protocol.md."},
        "servers": {"local": {"host": "127.0.0.1:8765", "protocol": "ws", "pathname": "/",
                              "security": [{"$ref": "#/components/securitySchemes/token"},
                                           {"$ref": "#/components/securitySchemes/bearer"}]}},
        "channels": {"daemon": {"address": "/", "messages": {k: {"$ref": f"#/components/messages/{k}"}
                                                             for k in messages}}},
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "token": {"type": "httpApiKey", "name": "token", "in": "query",
                          "description": "the daemon token (data directory file 'token', or --token)"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
