"""Stemforge protocol v1: pure data (stdlib only) shared by the daemon and every client.

- :mod:`protocol.errors`    one error tree with stable wire codes
- :mod:`protocol.records`   value records (Region, Take, SessionInfo, ...)
- :mod:`protocol.messages`  every request and event dataclass (``MESSAGE_TYPES``, ``REPLIES``); the
  classes live in :mod:`protocol.requests` and :mod:`protocol.events` on :mod:`protocol.base`
- :mod:`protocol.codec`     JSON text frames: ``encode`` / ``decode`` (strict), on :mod:`protocol.convert`
- :mod:`protocol.region`    seconds / samples / beats / bars -> exact sample indices at 48 kHz
- :mod:`protocol.binary`    binary audio frames (header + PCM) for uploads, downloads, streams
- :mod:`protocol.osc`       the OSC address space and (address, args) <-> message conversion
- :mod:`protocol.schema`    JSON Schema + AsyncAPI export (``python -m protocol.schema --out docs/schema``),
  with :mod:`protocol.asyncapi`, :mod:`protocol.docgen` (docs/protocol.md tables) and
  :mod:`protocol.examples` (one example per message type)
"""
