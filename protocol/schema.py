"""JSON Schema (draft 2020-12) of protocol v1, generated from the message dataclasses.

    python -m protocol.schema --out docs/schema [--doc docs/protocol.md] [--check]

writes ``stemforge-v1.schema.json`` (any message), ``requests-v1.schema.json`` and
``events-v1.schema.json`` (one side each) and ``asyncapi-v1.json`` (:mod:`protocol.asyncapi`); with
``--doc`` it regenerates the reference sections of ``docs/protocol.md`` (see :mod:`protocol.docgen`).
``--check`` writes nothing and exits 1 when a file is out of date. The schema states types, enums,
required and unknown fields; value ranges (``steps`` 1..1000 ...) are checked by the decoder and
listed in ``docs/protocol.md``. Note that JSON Schema counts ``1.0`` as an integer, the decoder does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from protocol.convert import field_types, required_fields, to_json_value
from protocol.examples import EXAMPLES
from protocol.messages import EVENTS, MESSAGE_TYPES, PROTOCOL_VERSION, REQUESTS, Message

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://stemforge.local/schema/v1/"
FILES = {"stemforge-v1.schema.json": MESSAGE_TYPES, "requests-v1.schema.json": REQUESTS,
         "events-v1.schema.json": EVENTS}


def _doc(cls: type) -> str:
    text = inspect.getdoc(cls) or ""
    if (cls is not Message and text == inspect.getdoc(Message)) or text.startswith(cls.__name__ + "("):
        return ""  # inherited, or the signature dataclasses writes when there is no docstring
    return " ".join(text.split("\n\n")[0].split())


def def_name(cls: type) -> str:
    return f"msg.{cls.TYPE}" if issubclass(cls, Message) else cls.__name__


def type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """Schema of one field type; nested dataclasses go to ``defs`` and are referenced."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return {}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if tp in simple:
        return {"type": simple[tp]}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (Union, types.UnionType):
        return {"anyOf": [type_schema(a, defs) for a in typing.get_args(tp)]}
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0], defs)}
        return {"type": "array", "prefixItems": [type_schema(a, defs) for a in args], "items": False,
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(typing.get_args(tp)[1], defs)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = def_name(tp)
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = record_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {tp!r}")


def record_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    if issubclass(cls, Message):
        props["v"] = {"const": PROTOCOL_VERSION}
        props["type"] = {"const": cls.TYPE}
        required += ["v", "type"]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, tp in field_types(cls).items():
        prop = type_schema(tp, defs)
        default = fields[name].default
        if default is not dataclasses.MISSING and default is not None:
            prop = {**prop, "default": to_json_value(default)}
        props[name] = prop
    required += [n for n in field_types(cls) if n in required_fields(cls)]
    out: dict[str, Any] = {"type": "object"}
    if _doc(cls):
        out["description"] = _doc(cls)
    out.update({"properties": props, "required": required, "additionalProperties": False})
    if issubclass(cls, Message) and cls.TYPE in EXAMPLES:
        out["examples"] = [{"v": PROTOCOL_VERSION, "type": cls.TYPE, **to_json_value(EXAMPLES[cls.TYPE])}]
    return out


def build_schema(types_: dict[str, type[Message]], filename: str) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    refs = [type_schema(cls, defs) for _, cls in sorted(types_.items())]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": BASE_ID + filename,
        "title": f"Stemforge protocol v{PROTOCOL_VERSION}: " + filename.split("-v")[0],
        "description": "One WebSocket text frame: a JSON object whose 'type' selects the message.",
        "oneOf": refs,
        "$defs": dict(sorted(defs.items())),
    }


ASYNCAPI_FILE = "asyncapi-v1.json"


def render_files() -> dict[str, str]:
    """File name -> text of every generated file (the three schemas and the AsyncAPI document)."""
    from protocol.asyncapi import build_asyncapi

    out = {name: json.dumps(build_schema(t, name), indent=2, ensure_ascii=False) + "\n" for name, t in FILES.items()}
    out[ASYNCAPI_FILE] = json.dumps(build_asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocol.schema", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/schema", help="directory for the schema files")
    parser.add_argument("--doc", default=None, help="regenerate the reference sections of this protocol.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date; write nothing")
    args = parser.parse_args(argv)
    wanted = {Path(args.out) / name: text for name, text in render_files().items()}
    if args.doc:
        from protocol.docgen import render_doc

        doc = Path(args.doc)
        wanted[doc] = render_doc(doc.read_text(encoding="utf-8"))
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in stale:
            print(f"out of date: {p}", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(wanted[p], encoding="utf-8")
    for p in wanted:
        print(f"{'wrote' if p in stale else 'unchanged'} {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
