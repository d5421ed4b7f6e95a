"""``stemforge bench bridge`` end to end (small counts), and its bare servers on their own.

No timing assertions: the figures must exist, be finite and positive, and be consistent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daw_bridge import bench


def test_bare_osc_echo_answers_every_ping() -> None:
    port = bench.free_port(socket.SOCK_DGRAM)
    with bench.child(bench._osc_echo_main, port):
        out = bench.osc_round_trips({"bare": port}, 30)
    rtts, lost = out["bare"]["rtts"], out["bare"]["lost"]
    assert lost == 0 and len(rtts) == 30 and all(r > 0 for r in rtts)
    stats = bench.percentiles(rtts)
    assert stats["p50"] <= stats["p99"] <= stats["max"]


def test_bare_ws_server_serves_the_same_pcm_through_the_client(tmp_path: Path) -> None:
    audio = np.random.default_rng(0).uniform(-1, 1, (2, 100_000)).astype(np.float32)
    np.save(tmp_path / "a.npy", audio)
    port = bench.free_port()
    args = argparse.Namespace(pings=20, downloads=2, timeout=60)
    with bench.child(bench._ws_echo_main, port, str(tmp_path / "a.npy"), "float32"):
        out = asyncio.run(bench._bare_ws_side(port, args))

        from clients.python.client import StemforgeClient

        async def fetch() -> np.ndarray:
            async with StemforgeClient(f"ws://127.0.0.1:{port}/", token="t") as c:
                res = await c.download("x", chunk_frames=30_000)
                assert res.verified  # the bare server announces the sha256 of the PCM
                return res.audio

        got = asyncio.run(fetch())
    np.testing.assert_array_equal(got, audio)
    assert out["ws_bytes"] == audio.nbytes and len(out["ws_rates"]) == 2 and min(out["ws_rates"]) > 0
    assert len(out["ws_idle"]) == 20


@pytest.mark.timeout(300)
def test_bench_bridge_prints_both_columns(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "daw_bridge.cli", "bench", "bridge", "--pings", "40", "--downloads", "2",
           "--download-seconds", "2", "--render-seconds", "0.5", "--render-steps", "2", "--json", str(out_json)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for label in ("OSC ping->pong p50", "OSC ping->pong p99", "WS download", "longest stall"):
        assert label in text, text
    r = json.loads(out_json.read_text())
    for side in ("osc_daemon", "osc_bare"):
        assert r[side]["n"] == 40 - r[side]["lost"] and r[side]["lost"] == 0
        assert 0 < r[side]["p50"] <= r[side]["p99"] <= r[side]["max"]
    assert r["ws_daemon"]["ws_bytes"] == r["ws_bare"]["ws_bytes"] == 2 * 96_000 * 4
    assert all(x > 0 and math.isfinite(x) for x in r["ws_daemon"]["ws_rates"] + r["ws_bare"]["ws_rates"])
    render = r["ws_daemon"]["render"]
    assert render["takes"] >= 1 and len(render["rtts"]) >= 1
    lag = render["loop_lag"]  # the daemon's own probe, through GET /stats
    assert lag["samples"] >= 1 and 0 <= lag["p50_ms"] <= lag["max_ms"]
    assert "daemon loop-lag probe (10 ms timer" in text
