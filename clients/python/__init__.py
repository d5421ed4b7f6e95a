"""The Python client of the Stemforge daemon (protocol v1 over WebSocket).

- :class:`StemforgeClient` (``clients.python.client``): asyncio; requests, job events, reconnect.
- :class:`SyncClient` (``clients.python.sync``): the same, blocking, for scripts and DAW hosts.
- ``stemforge client ...`` (``clients.python.commands``): the command line on top of it.

Names are imported lazily so ``stemforge --help`` does not pay for numpy and websockets.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "StemforgeClient": "clients.python.client",
    "Job": "clients.python.client",
    "RequestTimeout": "clients.python.client",
    "error_text": "clients.python.client",
    "SyncClient": "clients.python.sync",
    "ConnectionLost": "clients.python.connection",
    "Endpoint": "clients.python.connection",
    "read_token": "clients.python.connection",
    "Download": "clients.python.transfer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clients.python' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
