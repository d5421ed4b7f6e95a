"""Real daemons for the daw_bridge tests: ``stemforge serve`` subprocesses on loopback, free ports, temp data dirs.

Imported by the test modules as ``bridge_helpers`` (a unique name: tests/ has no packages). One daemon per test module; clients are real:
websockets' sync client and UDP sockets carrying python-osc datagrams.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pythonosc.osc_message import OscMessage
from websockets.sync.client import ClientConnection, connect

from daw_bridge.osc import build_datagram

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    """``python -m daw_bridge.cli serve ...`` in a subprocess, with its log captured to a file."""

    def __init__(self, data_dir: Path, *extra: str, ws_port: int | None = None, osc_port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env_overrides = dict(env or {})
        self.extra = list(extra)
        self.ws_port = ws_port or free_port()
        self.osc_port = osc_port or free_port(socket.SOCK_DGRAM)
        self.log_path = data_dir.parent / f"{data_dir.name}-daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}

    def start(self) -> "DaemonProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "endpoints.json").unlink(missing_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
               **self.env_overrides}
        cmd = [sys.executable, "-m", "daw_bridge.commands", "serve", "--data-dir", str(self.data_dir),
               "--ws-port", str(self.ws_port), "--osc-port", str(self.osc_port), "--threads", "1", *self.extra]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        path = self.data_dir / "endpoints.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if path.is_file():
                try:
                    self.endpoints = json.loads(path.read_text())
                    if self.endpoints.get("pid") == self.proc.pid:
                        return self
                except json.JSONDecodeError:
                    pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"daemon did not start in {START_TIMEOUT} s:\n{self.log()[-4000:]}")

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connect(self, **kwargs: Any) -> ClientConnection:
        headers = kwargs.pop("additional_headers", {"Authorization": f"Bearer {self.token}"})
        return connect(self.url, additional_headers=headers, open_timeout=20, max_size=None, **kwargs)

    def kill(self) -> None:
        """SIGKILL the daemon (its worker dies with it: PR_SET_PDEATHSIG)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


# ---- WebSocket helpers ---------------------------------------------------------------------------------
def send(ws: ClientConnection, **msg: Any) -> None:
    ws.send(json.dumps({"v": 1, **msg}))


def recv(ws: ClientConnection, timeout: float = 60.0) -> dict[str, Any]:
    data = ws.recv(timeout=timeout)
    assert isinstance(data, str), f"expected a text frame, got {len(data)} binary bytes"
    return json.loads(data)


def request(ws: ClientConnection, timeout: float = 60.0, **msg: Any) -> dict[str, Any]:
    """Send one request and return the first text reply carrying its id (events of other jobs are skipped)."""
    msg.setdefault("id", f"r{time.monotonic_ns()}")
    send(ws, **msg)
    for _ in range(1000):
        reply = recv(ws, timeout)
        if reply.get("id") == msg["id"] and reply["type"] not in ("job.progress",):
            return reply
    raise AssertionError("no reply")


def wait_job(ws: ClientConnection, job_id: str, timeout: float = 120.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Collect this job's events until its terminal event; returns (terminal, progress events)."""
    progress = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = recv(ws, timeout)
        if ev.get("job_id") != job_id:
            continue
        if ev["type"] == "job.progress":
            progress.append(ev)
        elif ev["type"] in ("job.done", "job.failed", "job.cancelled"):
            return ev, progress
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


# ---- OSC helpers ---------------------------------------------------------------------------------------
class OscClient:
    """A UDP socket that sends python-osc datagrams and receives the daemon's replies on its own port."""

    def __init__(self, port: int, listen_port: int = 0) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", listen_port))
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_datagram(address, tuple(args)), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 30.0) -> tuple[str, list[Any]]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        return msg.address, list(msg.params)

    def until(self, address: str, timeout: float = 120.0, match: Any = None) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            addr, args = self.recv(max(0.1, deadline - time.monotonic()))
            if addr == address and (match is None or match(args)):
                return args
        raise AssertionError(f"no {address} in {timeout} s")

    def close(self) -> None:
        self.sock.close()
