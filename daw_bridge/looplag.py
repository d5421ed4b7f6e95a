"""Event-loop lag probe: how late the daemon's asyncio loop runs a timer, i.e. how long it stalls.

A task sleeps ``interval`` seconds again and again; each wake-up later than asked is a lag sample
(the loop was busy: a blocking call, a long callback, CPU starvation). Samples of the last
``keep_seconds`` are kept with their wall-clock time, so a caller can ask for the worst stall in
a time window (``stemforge bench bridge`` asks for the window of a render).

Exposed over HTTP on the WebSocket port as ``GET /stats?token=...[&since=T0&until=T1]`` (unix
times) through the server's ``http_routes`` hook; the answer is JSON::

    {"loop_lag": {"interval_ms": 10.0, "samples": 812, "max_ms": 3.1, "p99_ms": 1.2, "p50_ms": 0.1,
                  "since": 1795000000.0, "until": 1795000008.2}}
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)


class LoopLagProbe:
    def __init__(self, interval: float = 0.01, keep_seconds: float = 600.0) -> None:
        self.interval = interval
        self._samples: deque[tuple[float, float]] = deque(maxlen=max(1, int(keep_seconds / interval)))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LoopLagProbe:
        """Start on the running loop (call from inside it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-probe")
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - t0 - self.interval)
            self._samples.append((time.time(), lag))

    def snapshot(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Lag statistics (milliseconds) of the samples taken between ``since`` and ``until`` (unix times)."""
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        lags = sorted(lag for t, lag in self._samples if lo <= t <= hi)
        out: dict[str, Any] = {"interval_ms": self.interval * 1000, "samples": len(lags)}
        if lags:
            out.update(max_ms=lags[-1] * 1000, p99_ms=lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000,
                       p50_ms=lags[len(lags) // 2] * 1000)
        if since is not None:
            out["since"] = since
        if until is not None:
            out["until"] = until
        return out

    def http_route(self, conn: Any, request: Any, authorized: bool) -> Any:
        """``http_routes["/stats"]`` handler of :class:`daw_bridge.ws.WebSocketServer`."""
        if not authorized:
            return conn.respond(http.HTTPStatus.UNAUTHORIZED, "unauthorized: give the daemon token as ?token=\n")
        query = parse_qs(urlsplit(request.path).query)
        try:
            since = float(query["since"][0]) if "since" in query else None
            until = float(query["until"][0]) if "until" in query else None
        except ValueError:
            return conn.respond(http.HTTPStatus.BAD_REQUEST, "invalid_argument: since/until must be unix times\n")
        response = conn.respond(http.HTTPStatus.OK, json.dumps({"loop_lag": self.snapshot(since, until)}) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response


__all__ = ["LoopLagProbe"]
