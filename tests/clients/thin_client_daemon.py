"""One real daemon shared by the thin-client tests (web page, Max for Live node part, REAPER script).

``stemforge serve`` as a subprocess (:class:`daw_bridge.bench.DaemonProcess`) on free loopback ports,
with a temporary data directory and its own token file (the clients read it from there, as they do
on a producer's machine). Started once per test run on first use and stopped at exit, because
loading the engine worker is the slow part (tens of seconds on 2 shared cores).
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from daw_bridge.bench import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "clients"
START_TIMEOUT = 240.0

_daemon: DaemonProcess | None = None


def shared_daemon() -> DaemonProcess:
    global _daemon
    if _daemon is None or _daemon.proc is None or _daemon.proc.poll() is not None:
        tmp = Path(tempfile.mkdtemp(prefix="stemforge-thin-clients-"))
        d = DaemonProcess(tmp / "data", token=None, env={"OMP_NUM_THREADS": "1"})
        d.tmp = tmp  # type: ignore[attr-defined]
        try:
            wait_started(d.start())
        except BaseException:
            _stop(d)
            raise
        _daemon = d
        atexit.register(_stop, d)
    return _daemon


def wait_started(d: DaemonProcess, timeout: float = START_TIMEOUT) -> DaemonProcess:
    """Wait until the daemon has fully started: its port listens *and* it wrote ``endpoints.json``
    (the last step of startup, after the web page routes and the logged URLs)."""
    d.wait_ready(timeout)
    deadline = time.monotonic() + timeout
    path = d.data_dir / "endpoints.json"
    while time.monotonic() < deadline:
        try:
            if d.proc is not None and json.loads(path.read_text()).get("pid") == d.proc.pid:
                return d
        except (OSError, ValueError):
            pass
        if d.proc is None or d.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the daemon did not finish starting (no endpoints.json):\n{d.log_tail()}")


def _stop(d: DaemonProcess) -> None:
    d.stop()
    shutil.rmtree(getattr(d, "tmp", d.data_dir), ignore_errors=True)


def token(d: DaemonProcess) -> str:
    return (d.data_dir / "token").read_text().strip()


def node_modules_or_skip() -> Path:
    """``clients/node_modules`` after ``npm ci`` in clients/ (run.sh does it), or skip with the reason."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Node >= 18 runs the Max for Live and web studio tests)")
    modules = CLIENTS / "node_modules"
    if not (modules / "ws").is_dir() or not (modules / "playwright-core").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install clients/package.json (ws, playwright-core)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            pytest.fail(f"`npm ci` in clients/ failed: {done.stderr[-600:]}")
    return modules
