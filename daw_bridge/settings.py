"""Daemon settings: endpoints, data directory, model, security and limits (one frozen dataclass)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

from daw_bridge.storage import default_data_dir
from protocol.errors import InvalidArgument, Unauthorized
from protocol.records import Limits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_WS_PORT = 8765  # clients/python/connection.py uses the same default
DEFAULT_OSC_PORT = 9765
DEFAULT_SESSION_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    ws_port: int = DEFAULT_WS_PORT  # 0 = pick a free port
    osc_host: str | None = None  # None = 127.0.0.1 (OSC is loopback-only unless configured)
    osc_port: int | None = DEFAULT_OSC_PORT  # None = no OSC server; 0 = pick a free port
    osc_reply_port: int | None = None  # None = reply to the sender's address
    data_dir: Path = field(default_factory=default_data_dir)
    model: str | None = None  # checkpoint directory or hub id; None = the embedded default
    token: str | None = None  # None = read or create <data_dir>/token
    allow_dirs: tuple[Path, ...] = ()  # folders OSC clients may name files in
    origins: tuple[str, ...] = ()  # extra browser origins allowed on the WebSocket
    allowed_hosts: tuple[str, ...] = ()  # extra Host header names (besides 127.0.0.1, localhost, [::1], the bind host)
    limits: Limits = Limits()
    max_upload_bytes: int = 256 << 20  # PCM bytes of one upload (all chunks)
    threads: int | None = None  # torch threads in the worker
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None = CUDA when available
    default_session_seconds: float = DEFAULT_SESSION_SECONDS
    max_attempts: int = 3  # a job interrupted by this many daemon restarts is failed

    def check(self) -> None:
        """Refuse an unsafe configuration before anything binds."""
        if not is_loopback(self.host) and not self.token:
            raise Unauthorized(f"refusing to bind the WebSocket server to non-loopback address {self.host!r} "
                               "without an explicit --token")
        for port, name in ((self.ws_port, "--ws-port"), (self.osc_port, "--osc-port"),
                           (self.osc_reply_port, "--osc-reply-port")):
            if port is not None and not 0 <= int(port) < 65536:
                raise InvalidArgument(f"{name} must be in 0..65535, got {port}")
        if self.token is not None and len(self.token) < 16:
            raise InvalidArgument("--token must be at least 16 characters")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


__all__ = ["Settings", "is_loopback", "DEFAULT_HOST", "DEFAULT_WS_PORT", "DEFAULT_OSC_PORT"]
