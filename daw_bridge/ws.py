"""The WebSocket transport (websockets' asyncio server): protocol v1 JSON text frames + binary audio frames.

Handshake checks, in ``process_request`` order (each refusal is a plain HTTP response, so a browser
page or a native client sees why):

1. ``Host`` must name this machine's loopback (``127.0.0.1``, ``localhost``, ``[::1]``), the bind
   address or a configured host; anything else is a DNS-rebinding attempt -> 403.
2. HTTP routes (``http_routes``: path -> callable) answer plain GETs: the hook for the web page of
   issue 6, which the daemon serves from this same port.
3. ``Origin``: absent (native clients) is allowed; a browser origin must be
   ``http://127.0.0.1:<port>`` / ``http://localhost:<port>`` / ``http://[::1]:<port>`` or configured -> 403.
4. Token: ``?token=`` in the URL or ``Authorization: Bearer``; missing or wrong -> 401.
5. Connection limit -> 503.

Inside a connection every message goes to the dispatcher; a refused message is answered with an
``error`` event and the connection stays open. websockets' own frame limit (``max_size``) is set
to four times the protocol limits, so a moderately oversized message is answered with
``message_too_large``; only a frame past that hard cap closes the connection (code 1009).
"""

from __future__ import annotations

import asyncio
import http
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from daw_bridge.dispatcher import Dispatcher, Peer
from daw_bridge.settings import Settings, is_loopback
from protocol.codec import encode
from protocol.messages import Message

log = logging.getLogger(__name__)

HttpRoute = Callable[[ServerConnection, Request, bool], Response]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class WsPeer(Peer):
    transport = "ws"

    def __init__(self, conn: ServerConnection) -> None:
        addr = conn.remote_address
        super().__init__(f"ws {addr[0]}:{addr[1]}" if addr else "ws ?")
        self.conn = conn
        self._lock = asyncio.Lock()  # FIFO: events keep their order

    async def send(self, msg: Message) -> None:
        await self._send(encode(msg))

    async def send_binary(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data: str | bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                await self.conn.send(data)
            except ConnectionClosed:
                self.closed = True  # the client left; its jobs go on (results stay in the journal)


def split_host(value: str) -> str:
    """``Host`` header -> host name without port, lower-case (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class WebSocketServer:
    def __init__(self, dispatcher: Dispatcher, settings: Settings, token: str) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.token = token
        self.port = settings.ws_port
        self.http_routes: dict[str, HttpRoute] = {}
        self._server: Server | None = None
        self._connections = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> int:
        lim = self.settings.limits
        hard_cap = 4 * max(lim.max_message_bytes, lim.max_binary_frame_bytes)
        self._server = await serve(self._handler, self.settings.host, self.settings.ws_port,
                                   process_request=self._process_request, max_size=hard_cap,
                                   server_header="Stemforge", logger=logging.getLogger("daw_bridge.ws.server"))
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, with_token: bool = True) -> str:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"ws://{shown}:{self.port}/" + (f"?token={self.token}" if with_token else "")

    # ---- handshake -----------------------------------------------------------------------------
    def allowed_hosts(self) -> set[str]:
        hosts = set(LOOPBACK_NAMES) | {h.lower() for h in self.settings.allowed_hosts}
        if self.settings.host not in ("0.0.0.0", "::", ""):
            hosts.add(self.settings.host.lower().strip("[]"))
        return hosts

    def allowed_origins(self) -> set[str]:
        p = self.port
        return {f"http://127.0.0.1:{p}", f"http://localhost:{p}", f"http://[::1]:{p}",
                *(o.rstrip("/") for o in self.settings.origins)}

    def authorized(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if given is None:
            values = parse_qs(urlsplit(request.path).query).get("token")
            given = values[0] if values else None
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        hosts = request.headers.get_all("Host")
        host = split_host(hosts[0]) if len(hosts) == 1 else f"<{len(hosts)} Host headers>"
        if host not in self.allowed_hosts():
            log.warning("refused handshake: Host %r is not this daemon (DNS rebinding?)", host)
            return _reject(conn, http.HTTPStatus.FORBIDDEN, f"forbidden_origin: Host {host!r} is not allowed\n")
        path = urlsplit(request.path).path
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        route = self.http_routes.get(path)
        if route is not None and not upgrade:
            return route(conn, request, self.authorized(request))
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self.allowed_origins():
            log.warning("refused handshake: Origin %r is not allowed", origin)
            return _reject(conn, http.HTTPStatus.FORBIDDEN, f"forbidden_origin: Origin {origin!r} is not allowed\n")
        if not self.authorized(request):
            log.info("refused handshake from %s: missing or wrong token", conn.remote_address)
            return _reject(conn, http.HTTPStatus.UNAUTHORIZED,
                           "unauthorized: give the daemon token as ?token= or Authorization: Bearer\n",
                           {"WWW-Authenticate": 'Bearer realm="stemforge"'})
        if self._connections >= self.settings.limits.max_connections:
            return _reject(conn, http.HTTPStatus.SERVICE_UNAVAILABLE,
                           f"limit_exceeded: {self._connections} connections open "
                           f"(limit {self.settings.limits.max_connections})\n")
        return None

    # ---- connections ---------------------------------------------------------------------------
    async def _handler(self, conn: ServerConnection) -> None:
        self._connections += 1
        peer = WsPeer(conn)
        self.dispatcher.register(peer)
        log.info("%s connected", peer.label)
        try:
            async for message in conn:
                if isinstance(message, str):
                    await self.dispatcher.handle_text(peer, message)
                else:
                    await self.dispatcher.handle_binary(peer, bytes(message))
        except ConnectionClosed as exc:
            log.info("%s closed: %s", peer.label, exc)
        finally:
            self._connections -= 1
            self.dispatcher.unregister(peer)
            log.info("%s disconnected", peer.label)


def _reject(conn: ServerConnection, status: http.HTTPStatus, text: str,
            headers: dict[str, Any] | None = None) -> Response:
    response = conn.respond(status, text)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


__all__ = ["WebSocketServer", "WsPeer", "split_host", "Headers", "is_loopback"]
