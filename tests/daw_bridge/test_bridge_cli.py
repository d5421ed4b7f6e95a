"""``stemforge serve`` refusals that need no model: busy ports and unsafe binds exit 1 with a wire code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bridge_helpers import REPO


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daw_bridge.commands", "serve", "--data-dir", str(tmp_path), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"})


def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--host", "0.0.0.0", "--ws-port", "0", "--osc-port", "-1")
    assert proc.returncode == 1
    assert "[unauthorized]" in proc.stderr and "--token" in proc.stderr
    assert not (tmp_path / "journal.sqlite3").exists()  # refused before anything started


def test_busy_osc_port_is_a_clean_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        proc = _serve(tmp_path, "--ws-port", "0", "--osc-port", str(port))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"[invalid_argument]: cannot listen for OSC on udp 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "endpoints.json").exists()


def test_one_daemon_per_data_directory(tmp_path: Path) -> None:
    from daw_bridge.storage import Storage

    fd = Storage(tmp_path).lock()  # as a running daemon holds it
    try:
        proc = _serve(tmp_path, "--ws-port", "0", "--osc-port", "0")
    finally:
        os.close(fd)
    assert proc.returncode == 1
    assert "in use by another stemforge daemon" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    fd = Storage(tmp_path).lock()  # released: the next daemon gets it
    os.close(fd)
