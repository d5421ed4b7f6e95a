"""Durability: SIGKILL the daemon after it acknowledged jobs, restart it on the same data directory,
and every acknowledged job ends in exactly one terminal state (here: done, with its takes on disk)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import soundfile as sf

from bridge_helpers import DaemonProcess, recv, request


def test_acknowledged_jobs_survive_sigkill_and_restart(module_tmp: Path) -> None:
    data = module_tmp / "data"
    first = DaemonProcess(data).start()
    try:
        with first.connect() as ws:
            running = request(ws, type="generate", prompt="kept alive", stems=["bass"], steps=10, seed=1,
                              region={"unit": "seconds", "start": 0, "end": 0.5})
            queued = request(ws, type="generate", prompt="queued", stems=["drums"], steps=2, seed=2,
                             region={"unit": "seconds", "start": 0.5, "end": 1.0})
            assert running["type"] == queued["type"] == "job.accepted"
            assert queued["position"] == 1
            for _ in range(500):  # kill while the first job is sampling
                ev = recv(ws)
                if ev.get("job_id") == running["job_id"] and ev.get("stage") == "sampling":
                    break
            first.kill()
    finally:
        first.kill()
    ids = {running["job_id"], queued["job_id"]}
    with sqlite3.connect(data / "journal.sqlite3") as db:
        states = dict(db.execute("SELECT job_id, state FROM jobs").fetchall())
    assert states == {running["job_id"]: "running", queued["job_id"]: "queued"}

    second = DaemonProcess(data).start()
    try:
        with second.connect() as ws:
            deadline = time.monotonic() + 180
            final: dict[str, dict] = {}
            while time.monotonic() < deadline and len(final) < 2:
                jobs = request(ws, type="job.list")["jobs"]
                final = {j["job_id"]: j for j in jobs if j["job_id"] in ids
                         and j["state"] in ("done", "failed", "cancelled")}
                time.sleep(0.5)
            assert {j["state"] for j in final.values()} == {"done"}, final
            session = request(ws, type="session.get")["session"]
        takes = {t["job_id"]: t for lane in session["stems"] for t in lane["takes"]}
        assert set(takes) == ids  # one take per job: nothing ran twice to completion
        assert sf.info(takes[running["job_id"]]["path"]).frames == 24_000
        assert takes[queued["job_id"]]["start_sample"] == 24_000
    finally:
        assert second.stop() == 0, second.log()[-3000:]
    with sqlite3.connect(data / "journal.sqlite3") as db:
        rows = db.execute("SELECT job_id, state, attempts FROM jobs ORDER BY created").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(running["job_id"], "done"), (queued["job_id"], "done")]
    assert rows[0][2] == 2  # interrupted once, run again
    assert "queued again" in second.log()
