"""Where the daemon is and how to authenticate: URL, token file, handshake errors.

Clients import only :mod:`protocol`, so the daemon's data-directory convention is restated here:
``$STEMFORGE_DATA_DIR`` or ``~/.local/share/stemforge``, with the token in the file ``token``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from protocol.errors import InvalidArgument, StemforgeError, Unauthorized

DEFAULT_HOST = "127.0.0.1"
DEFAULT_WS_PORT = 8765
TOKEN_FILE = "token"
ENDPOINTS_FILE = "endpoints.json"  # written by a running daemon: ws_url, ws_port, osc_port, pid


class ConnectionLost(StemforgeError):
    """The daemon could not be reached, or the connection dropped before a reply (client side only)."""

    code = "connection_lost"


def default_data_dir() -> Path:
    env = os.environ.get("STEMFORGE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "stemforge"


def read_token(data_dir: str | Path | None = None) -> str | None:
    """The daemon's token from ``<data_dir>/token`` (None when the file does not exist)."""
    path = Path(data_dir).expanduser() if data_dir else default_data_dir()
    path = path / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unauthorized(f"cannot read the daemon token {path}: {exc}", path=str(path)) from None
    return token or None


CURRENT_SESSION_FILE = "client-session"


def read_current_session(data_dir: str | Path | None = None) -> str | None:
    """The session the CLI client last created (``<data_dir>/client-session``), or None."""
    path = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / CURRENT_SESSION_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def write_current_session(session_id: str, data_dir: str | Path | None = None) -> None:
    """Remember ``session_id`` as the CLI's current session (used when ``--session`` is not given)."""
    path = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / CURRENT_SESSION_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(session_id + "\n")
    except OSError:
        pass  # a read-only data dir only loses the convenience; --session still works


def read_endpoints(data_dir: str | Path | None = None) -> dict[str, object] | None:
    """The running daemon's ``endpoints.json`` (None when absent or unreadable)."""
    path = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / ENDPOINTS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Endpoint:
    """A daemon WebSocket endpoint plus the token sent as ``Authorization: Bearer``."""

    url: str
    token: str | None = None

    @classmethod
    def resolve(cls, url: str | None = None, host: str = DEFAULT_HOST, port: int | None = None,
                token: str | None = None, data_dir: str | Path | None = None) -> Endpoint:
        """``url`` wins over host/port; no port = the running daemon's ``endpoints.json`` in ``data_dir``
        (loopback only), else 8765. ``token`` wins over ``$STEMFORGE_TOKEN``, then the token file."""
        if url is None:
            if port is None:
                port = DEFAULT_WS_PORT
                found = read_endpoints(data_dir) if host == DEFAULT_HOST else None
                ws_port = found.get("ws_port") if found else None
                if isinstance(ws_port, int):
                    port = ws_port
            if not 0 < int(port) < 65536:
                raise InvalidArgument(f"port must be in 1..65535, got {port}", field="port")
            url = f"ws://{host}:{int(port)}/"
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise InvalidArgument(f"daemon URL must look like ws://host:port/, got {url!r}", field="url")
        if token is None:
            token = os.environ.get("STEMFORGE_TOKEN") or read_token(data_dir)
        return cls(url=url, token=token)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}
