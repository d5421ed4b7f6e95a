"""The message base class and the type registries shared by :mod:`protocol.requests` and
:mod:`protocol.events` (import messages from :mod:`protocol.messages`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocol.convert import check_literals
from protocol.records import check

MAX_PROMPT_CHARS = 2000
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1
MAX_CHORD_CHARS = 512  # chord symbols of a request ("Am F C G ...")


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of every message. ``TYPE`` is the wire type; ``KIND`` is ``request`` or ``event``."""

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    id: str | int | None = None  # client request id, echoed in replies

    def __post_init__(self) -> None:
        check_literals(self, self.TYPE)
        self._check()

    def _check(self) -> None:
        """Value checks (ranges, non-empty); raise InvalidArgument. Subclasses extend."""


#: wire type -> class, filled by the decorators below
REQUESTS: dict[str, type[Message]] = {}
EVENTS: dict[str, type[Message]] = {}
MESSAGE_TYPES: dict[str, type[Message]] = {}


def _request(cls: type[Message]) -> type[Message]:
    cls.KIND = "request"
    assert cls.TYPE and cls.TYPE not in MESSAGE_TYPES, cls
    REQUESTS[cls.TYPE] = MESSAGE_TYPES[cls.TYPE] = cls
    return cls


def _event(cls: type[Message]) -> type[Message]:
    cls.KIND = "event"
    assert cls.TYPE and cls.TYPE not in MESSAGE_TYPES, cls
    EVENTS[cls.TYPE] = MESSAGE_TYPES[cls.TYPE] = cls
    return cls


def _nonempty(value: str, where: str) -> None:
    check(bool(value) and value.strip() == value, where,
          f"must be a non-empty name without surrounding spaces, got {value!r}")


def _stems(stems: tuple[str, ...], where: str) -> None:
    for s in stems:
        _nonempty(s, where)
    check(len(set(stems)) == len(stems), where, f"stems must be distinct, got {list(stems)}")
