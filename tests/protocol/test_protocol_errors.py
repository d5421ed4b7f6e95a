"""The error-code table is stable, and protocol/ imports nothing outside the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from protocol import errors

ROOT = Path(__file__).resolve().parents[2]

CODES = {
    "internal", "protocol_error", "malformed_message", "unsupported_version", "unknown_message_type",
    "invalid_argument", "message_too_large", "access_denied", "unauthorized", "forbidden_origin",
    "path_not_allowed", "limit_exceeded", "not_found", "unknown_session", "unknown_take", "unknown_job",
    "unknown_stem", "unknown_concept", "audio_error", "invalid_audio", "non_finite_audio", "silent_audio",
    "invalid_region", "model_error", "checkpoint_not_found", "config_mismatch", "concept_error", "cancelled",
    "worker_crashed", "audio_device_unavailable",
}


def test_error_code_table_is_exactly_this() -> None:
    # codes are never renamed or removed; a new code must be added here (and to docs/protocol.md) on purpose
    assert set(errors.ERROR_CODES) == CODES
    assert errors.ERROR_CODES["invalid_region"] is errors.RegionError
    assert errors.ERROR_CODES["cancelled"] is errors.JobCancelled
    for code, cls in errors.ERROR_CODES.items():
        assert issubclass(cls, errors.StemforgeError) and cls.code == code


def test_every_code_rebuilds_from_the_wire() -> None:
    for code, cls in errors.ERROR_CODES.items():
        exc = cls("boom", field="x")
        back = errors.error_from_dict(json.loads(json.dumps(exc.to_dict())))
        assert type(back) is cls and back.code == code and back.message == "boom" and back.details == {"field": "x"}
    future = errors.error_from_dict({"code": "from_the_future", "message": "m"})
    assert type(future) is errors.StemforgeError and future.code == "from_the_future"


def test_protocol_imports_only_the_standard_library() -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import protocol.codec, protocol.binary, protocol.osc, protocol.region, protocol.schema, protocol.docgen\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(json.dumps(sorted(new - set(sys.stdlib_module_names) - {'protocol'})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []
