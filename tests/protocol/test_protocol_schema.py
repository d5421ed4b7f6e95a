"""JSON Schema export and docs/protocol.md: generated from the code, valid, and in sync."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import codec
from protocol.docgen import render_doc
from protocol.examples import EXAMPLES
from protocol.messages import EVENTS, MESSAGE_TYPES, REQUESTS
from protocol.schema import ASYNCAPI_FILE, FILES, main, render_files

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _validator(name: str):  # type: ignore[no-untyped-def]
    schema = json.loads(render_files()[name])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_examples_validate_against_the_schema() -> None:
    any_v, req_v, ev_v = (_validator(n) for n in FILES)
    for kind, msg in EXAMPLES.items():
        data = json.loads(codec.encode(msg))
        assert not list(any_v.iter_errors(data)), kind
        side = req_v if kind in REQUESTS else ev_v
        other = ev_v if kind in REQUESTS else req_v
        assert not list(side.iter_errors(data)), kind
        assert list(other.iter_errors(data)), kind  # each side's schema holds only its own types


@pytest.mark.parametrize("data", [
    {"v": 1, "type": "generate", "steps": "50"},
    {"v": 2, "type": "ping"},
    {"v": 1, "type": "nope"},
    {"v": 1, "type": "ping", "extra": 1},
    {"v": 1, "type": "inpaint", "stems": ["bass"]},
    {"v": 1, "type": "generate", "region": {"unit": "ticks", "start": 0, "end": 1}},
    {"v": 1, "type": "session.create", "time_signature": [4, 4, 4]},
])
def test_schema_refuses_what_the_decoder_refuses(data: dict) -> None:
    assert list(_validator("stemforge-v1.schema.json").iter_errors(data))
    with pytest.raises(Exception) as info:
        codec.from_dict(data)
    assert info.value.code in {"invalid_argument", "unsupported_version", "unknown_message_type"}


def test_schema_covers_every_type() -> None:
    schema = json.loads(render_files()["stemforge-v1.schema.json"])
    assert {k.removeprefix("msg.") for k in schema["$defs"] if k.startswith("msg.")} == set(MESSAGE_TYPES)
    assert len(schema["oneOf"]) == len(MESSAGE_TYPES) == len(REQUESTS) + len(EVENTS)
    ping = schema["$defs"]["msg.ping"]
    assert ping["required"] == ["v", "type"] and ping["additionalProperties"] is False


def test_committed_schema_and_doc_are_current(tmp_path: Path) -> None:
    for name, text in render_files().items():
        assert (ROOT / "docs" / "schema" / name).read_text(encoding="utf-8") == text, \
            f"docs/schema/{name} is stale: run python -m protocol.schema --out docs/schema --doc docs/protocol.md"
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert render_doc(doc) == doc, "docs/protocol.md is stale: run python -m protocol.schema --doc docs/protocol.md"
    for code in ("malformed_message", "invalid_region", "/stemforge/job/done", "#### `generate`", "SFAU"):
        assert code in doc


def test_cli_writes_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "schema"
    assert main(["--out", str(out), "--check"]) == 1
    assert main(["--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, ASYNCAPI_FILE])
    assert main(["--out", str(out), "--check"]) == 0
    (out / "events-v1.schema.json").write_text("{}")
    assert main(["--out", str(out), "--check"]) == 1
    # and as a module, the documented command line
    run = subprocess.run([sys.executable, "-m", "protocol.schema", "--out", str(out), "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "events-v1.schema.json" in run.stderr


def test_asyncapi_refs_resolve() -> None:
    files = render_files()
    doc = json.loads(files[ASYNCAPI_FILE])
    schema = json.loads(files["stemforge-v1.schema.json"])
    assert doc["asyncapi"] == "3.0.0"
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    for ref in refs:
        target, _, pointer = ref.partition("#")
        node: object = schema if target == "stemforge-v1.schema.json" else doc
        assert target in ("", "stemforge-v1.schema.json"), ref
        for part in pointer.strip("/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
    messages = doc["components"]["messages"]
    assert {v["name"] for v in messages.values()} == set(MESSAGE_TYPES) | {"audio.frame"}
    ping_op = doc["operations"]["request_ping"]
    assert [r["$ref"].rsplit("/", 1)[1] for r in ping_op["reply"]["messages"]] == ["pong", "error"]
