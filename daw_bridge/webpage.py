"""The web studio page (issue 6), served over plain HTTP GET from the daemon's WebSocket port.

The page is static (``clients/web/``: HTML, CSS and ES modules, no build step, nothing from a CDN);
everything it does goes through protocol v1 on the WebSocket of the same origin, so the browser's
``Origin`` (``http://127.0.0.1:<port>``) is one the daemon allows. Routes, through
:attr:`daw_bridge.ws.WebSocketServer.http_routes` (exact paths):

    GET /                 index.html
    GET /static/<file>    the other files of clients/web/ (top level only)

The static files hold no secret, so they are served without the token; the page reads the token from
its own URL (``/?token=...``, the URL the daemon logs at startup, as Jupyter does) and sends it on the
WebSocket handshake, which is where the daemon checks it. Files are read on each request (they are
small), so an edited page needs only a reload (a new file needs a daemon restart: routes are exact paths
registered at startup).
"""

from __future__ import annotations

import http
import logging
from pathlib import Path
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "clients" / "web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def _csp(host: str) -> str:
    """Same-origin only: scripts and styles from this daemon, the WebSocket back to it, audio as blobs."""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"media-src 'self' blob:; connect-src 'self' ws://{host}; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")


class WebPage:
    """Maps the page's URL paths to files of ``web_dir`` and answers GETs for them."""

    def __init__(self, web_dir: Path = WEB_DIR) -> None:
        self.web_dir = web_dir

    def routes(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        if not self.web_dir.is_dir():
            return files
        for path in sorted(self.web_dir.iterdir()):
            if path.is_file() and path.suffix in CONTENT_TYPES:
                files[f"/static/{path.name}"] = path
        index = self.web_dir / "index.html"
        if index.is_file():
            files["/"] = index
            files["/index.html"] = index
        return files

    def install(self, ws: Any) -> list[str]:
        """Register every page route on ``ws.http_routes`` (a route set by someone else is left alone)."""
        paths = []
        for url_path, file_path in self.routes().items():
            ws.http_routes.setdefault(url_path, self._handler(file_path))
            paths.append(url_path)
        if not paths:
            log.warning("web studio page not found in %s; GET / will not serve it", self.web_dir)
        return paths

    def _handler(self, file_path: Path) -> Any:
        def handle(conn: Any, request: Any, authorized: bool) -> Response:  # noqa: ARG001 - static, no secret
            try:
                body = file_path.read_bytes()
            except OSError as exc:
                log.warning("web page file %s unreadable: %s", file_path, exc)
                return conn.respond(http.HTTPStatus.NOT_FOUND, f"not_found: {file_path.name}\n")
            host = request.headers.get("Host", "127.0.0.1")
            headers = Headers([
                ("Content-Type", CONTENT_TYPES.get(file_path.suffix, "application/octet-stream")),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Content-Security-Policy", _csp(host)),
                ("Server", "Stemforge"),
            ])
            return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, body)

        return handle


def page_url(ws: Any, token: str | None) -> str:
    """``http://127.0.0.1:<port>/?token=...``: the URL to open (logged at startup, as Jupyter does)."""
    host = ws.settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{ws.port}/" + (f"?token={token}" if token else "")


def log_webpage(ws: Any, token: str | None) -> str:
    """Log the page's URL with the token (once the port is open); returns the URL."""
    url = page_url(ws, token)
    log.info("  Web studio %s", url)
    return url


__all__ = ["WebPage", "log_webpage", "page_url", "WEB_DIR"]
