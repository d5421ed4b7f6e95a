"""The daemon: storage + journal + engine worker + dispatcher + WebSocket and OSC servers, with a clean shutdown.

:class:`Daemon` is what ``stemforge serve`` runs (:func:`serve` adds SIGINT/SIGTERM handling).
When it is ready it logs its endpoints (the WebSocket URL with the token, as Jupyter does) and
writes ``<data_dir>/endpoints.json`` (ws URL and port, OSC port, pid) for local clients; the file is
removed on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from typing import Any

from daw_bridge.dispatcher import Dispatcher
from daw_bridge.journal import Journal
from daw_bridge.osc import OscServer
from daw_bridge.settings import Settings, is_loopback
from daw_bridge.storage import Storage, atomic_write_bytes
from daw_bridge.worker import EngineWorker
from daw_bridge.ws import WebSocketServer
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)


def daemon_version() -> str:
    try:
        from importlib.metadata import version

        return version("stemforge")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0.0.0+unknown"


class Daemon:
    def __init__(self, settings: Settings, *, worker_runner: str | None = None) -> None:
        settings.check()
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self._lock_fd = self.storage.lock()  # one daemon per data directory
        self.storage.remove_stale_temp_files()
        self.token = settings.token or self.storage.load_or_create_token()
        self.journal = Journal(self.storage.journal_path)
        kwargs: dict[str, Any] = {"threads": settings.threads, "device": settings.device}
        if worker_runner:
            kwargs["runner"] = worker_runner
        self.worker = EngineWorker(settings.model, **kwargs)
        self.dispatcher = Dispatcher(settings, self.storage, self.journal, self.worker, daemon_version())
        self.ws = WebSocketServer(self.dispatcher, settings, self.token)
        self.osc: OscServer | None = None
        self.endpoints_path = self.storage.root / "endpoints.json"

    def check_ports(self) -> None:
        """Fail fast (before the model loads) when a configured port is taken; the real bind re-checks."""
        checks = [(socket.SOCK_STREAM, self.settings.host, self.settings.ws_port, "WebSocket clients on")]
        if self.settings.osc_port is not None:
            checks.append((socket.SOCK_DGRAM, self.settings.osc_host or "127.0.0.1", self.settings.osc_port,
                           "OSC on udp"))
        for kind, host, port, what in checks:
            if not port:
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, kind) as probe:
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise InvalidArgument(f"cannot listen for {what} {host}:{port}: {exc.strerror or exc}") from None

    async def start(self) -> None:
        try:
            self.check_ports()
            info = await self.worker.start()
        except BaseException:
            self.journal.close()
            raise
        self.dispatcher.start()
        # HTTP routes exist before the port opens, so a client that connects at once finds them.
        from daw_bridge.looplag import LoopLagProbe  # stats hook (GET /stats) for `stemforge bench bridge`
        from daw_bridge.webpage import WebPage, log_webpage  # issue 6: the web studio page, GET / on this port

        self.loop_lag = LoopLagProbe().start()
        self.ws.http_routes.setdefault("/stats", self.loop_lag.http_route)
        has_page = WebPage().install(self.ws)
        try:
            await self.ws.start()
        except OSError as exc:
            raise InvalidArgument(f"cannot listen for WebSocket clients on {self.settings.host}:"
                                  f"{self.settings.ws_port}: {exc.strerror or exc}") from None
        if self.settings.osc_port is not None:
            osc_host = self.settings.osc_host or "127.0.0.1"
            self.osc = OscServer(self.dispatcher, osc_host, self.settings.osc_port, self.settings.osc_reply_port)
            try:
                await self.osc.start()
            except OSError as exc:
                self.osc = None
                raise InvalidArgument(f"cannot listen for OSC on udp {osc_host}:{self.settings.osc_port}: "
                                      f"{exc.strerror or exc}") from None
        devices = await self.dispatcher.transfers.devices()  # initialise PortAudio now, not in the first audition
        log.info("audio outputs: %s", ", ".join(d.name for d in devices) or "none")
        self._log_endpoints(info)
        if has_page:
            log_webpage(self.ws, self.token)
        endpoints = {"ws_url": self.ws.url(with_token=False), "ws_port": self.ws.port,
                     "osc_host": self.osc.host if self.osc else None, "osc_port": self.osc.port if self.osc else None,
                     "osc_reply_port": self.settings.osc_reply_port, "pid": os.getpid(),
                     "model_hash": info.get("hash"), "trained": info.get("trained")}
        atomic_write_bytes(self.endpoints_path, (json.dumps(endpoints, indent=2) + "\n").encode())

    def _log_endpoints(self, info: dict[str, Any]) -> None:
        kind = ("trained default model" if info.get("trained") else
                "UNTRAINED random-init model (outputs are noise-like; train or pass --model)")
        log.info("Stemforge %s serving", daemon_version())
        log.info("  WebSocket  %s", self.ws.url(with_token=True))
        if self.osc:
            reply = (f"replies to port {self.settings.osc_reply_port}" if self.settings.osc_reply_port
                     else "replies to the sender")
            log.info("  OSC        udp://%s:%d (%s)", self.osc.host, self.osc.port, reply)
        log.info("  data dir   %s", self.storage.root)
        log.info("  model      %s %s on %s, hash %s: %s", info.get("name"), info.get("path"), info.get("device"),
                 info.get("hash"), kind)
        if self.settings.allow_dirs:
            log.info("  allowed folders for host paths: %s", ", ".join(str(p) for p in self.settings.allow_dirs))
        if not is_loopback(self.settings.host):
            log.warning("the WebSocket server listens on %s, reachable from other machines", self.settings.host)
        if self.osc and not is_loopback(self.osc.host):
            log.warning("the OSC server listens on %s: anyone who can reach it can queue jobs (OSC has no token)",
                        self.osc.host)

    async def stop(self) -> None:
        log.info("shutting down")
        if getattr(self, "loop_lag", None) is not None:
            await self.loop_lag.stop()
        await self.ws.close()
        if self.osc is not None:
            self.osc.close()
        await self.dispatcher.stop()
        await self.worker.stop()
        self.journal.close()
        try:
            self.endpoints_path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._lock_fd)
        log.info("stopped")


async def serve_until_signalled(settings: Settings, stop: asyncio.Event | None = None) -> None:
    daemon = Daemon(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not Unix
            pass
    try:
        await daemon.start()
        await stop.wait()
    finally:
        await daemon.stop()


def serve(settings: Settings) -> int:
    asyncio.run(serve_until_signalled(settings))
    return 0


__all__ = ["Daemon", "serve", "serve_until_signalled", "daemon_version"]
