"""The one error hierarchy of Stemforge, with stable wire codes.

Every error a client can see is a :class:`StemforgeError` subclass. Its ``code`` is a
stable lowercase string sent on the wire (WebSocket ``error``/``failed`` events, OSC
``/stemforge/error``); never rename a code, only add new ones.

    StemforgeError                      internal
    +-- ProtocolError                   (malformed input on the wire)
    |   +-- MalformedMessage            malformed_message
    |   +-- UnsupportedVersion          unsupported_version
    |   +-- UnknownMessageType          unknown_message_type
    |   +-- InvalidArgument             invalid_argument
    |   +-- MessageTooLarge             message_too_large
    +-- AccessError
    |   +-- Unauthorized                unauthorized
    |   +-- ForbiddenOrigin             forbidden_origin
    |   +-- PathNotAllowed              path_not_allowed
    |   +-- LimitExceeded               limit_exceeded
    +-- NotFoundError
    |   +-- UnknownSession              unknown_session
    |   +-- UnknownTake                 unknown_take
    |   +-- UnknownJob                  unknown_job
    |   +-- UnknownStem                 unknown_stem
    |   +-- UnknownConcept              unknown_concept
    +-- AudioError
    |   +-- InvalidAudio                invalid_audio      (unreadable/corrupt file, wrong shape)
    |   +-- NonFiniteAudio              non_finite_audio   (NaN / Inf samples)
    |   +-- SilentAudio                 silent_audio
    +-- RegionError                     invalid_region     (empty, negative, past the end)
    +-- ModelError
    |   +-- CheckpointNotFound          checkpoint_not_found
    |   +-- ConfigMismatch              config_mismatch
    |   +-- ConceptError                concept_error      (exists, wrong base model, too little audio)
    +-- JobCancelled                    cancelled
    +-- WorkerCrashed                   worker_crashed
    +-- AudioDeviceError                audio_device_unavailable
"""

from __future__ import annotations

from typing import Any


class StemforgeError(Exception):
    """Base class. ``code`` is the stable wire code; ``details`` is JSON-serialisable."""

    code: str = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class ProtocolError(StemforgeError):
    code = "protocol_error"


class MalformedMessage(ProtocolError):
    code = "malformed_message"


class UnsupportedVersion(ProtocolError):
    code = "unsupported_version"


class UnknownMessageType(ProtocolError):
    code = "unknown_message_type"


class InvalidArgument(ProtocolError):
    code = "invalid_argument"


class MessageTooLarge(ProtocolError):
    code = "message_too_large"


class AccessError(StemforgeError):
    code = "access_denied"


class Unauthorized(AccessError):
    code = "unauthorized"


class ForbiddenOrigin(AccessError):
    code = "forbidden_origin"


class PathNotAllowed(AccessError):
    code = "path_not_allowed"


class LimitExceeded(AccessError):
    code = "limit_exceeded"


class NotFoundError(StemforgeError):
    code = "not_found"


class UnknownSession(NotFoundError):
    code = "unknown_session"


class UnknownTake(NotFoundError):
    code = "unknown_take"


class UnknownJob(NotFoundError):
    code = "unknown_job"


class UnknownStem(NotFoundError):
    code = "unknown_stem"


class UnknownConcept(NotFoundError):
    code = "unknown_concept"


class AudioError(StemforgeError):
    code = "audio_error"


class InvalidAudio(AudioError):
    code = "invalid_audio"


class NonFiniteAudio(AudioError):
    code = "non_finite_audio"


class SilentAudio(AudioError):
    code = "silent_audio"


class RegionError(StemforgeError):
    code = "invalid_region"


class ModelError(StemforgeError):
    code = "model_error"


class CheckpointNotFound(ModelError):
    code = "checkpoint_not_found"


class ConfigMismatch(ModelError):
    code = "config_mismatch"


class ConceptError(ModelError):
    code = "concept_error"


class JobCancelled(StemforgeError):
    code = "cancelled"


class WorkerCrashed(StemforgeError):
    code = "worker_crashed"


class AudioDeviceError(StemforgeError):
    code = "audio_device_unavailable"


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


#: wire code -> exception class (stable; tested)
ERROR_CODES: dict[str, type[StemforgeError]] = {
    c.code: c for c in [StemforgeError, *_all_subclasses(StemforgeError)]
}


def error_from_dict(data: dict[str, Any]) -> StemforgeError:
    """Rebuild an exception received on the wire (unknown codes become the base class)."""
    cls = ERROR_CODES.get(str(data.get("code", "internal")), StemforgeError)
    err = cls(str(data.get("message", "")), **dict(data.get("details") or {}))
    if cls is StemforgeError and data.get("code"):
        err.code = str(data["code"])
    return err
