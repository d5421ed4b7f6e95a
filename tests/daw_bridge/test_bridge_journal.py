"""SQLite journal: WAL mode, guarded transitions, recovery after a killed process, sessions and takes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from daw_bridge.journal import Journal, TakeRow
from protocol.errors import InvalidArgument, UnknownJob, UnknownSession, UnknownStem, UnknownTake


def test_wal_and_exactly_one_terminal_state(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    j.add_job("a", "generate", {"prompt": "x"}, session_id="s")
    assert j.mark_running("a")
    assert not j.mark_running("a")
    assert j.mark_done("a", {"takes": ["t1"]})
    assert not j.mark_failed("a", "internal", "late failure")
    assert not j.mark_cancelled("a")
    row = j.get_job("a")
    assert (row.state, row.result, row.error_code, row.attempts) == ("done", {"takes": ["t1"]}, None, 1)
    with pytest.raises(UnknownJob):
        j.get_job("nope")
    with pytest.raises(sqlite3.IntegrityError):
        j.add_job("a", "generate", {})


def test_recover_after_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import time
        from daw_bridge.journal import Journal
        j = Journal({str(db)!r})
        j.add_job("q1", "generate", {{"n": 1}})
        j.add_job("r1", "generate", {{"n": 2}})
        j.mark_running("r1")
        j.add_job("d1", "generate", {{}})
        j.mark_running("d1"); j.mark_done("d1", {{}})
        j.add_job("x1", "concept.train", {{}})
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(400):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    j = Journal(db)
    queued = j.recover(resumable=lambda job: job.kind != "concept.train")
    assert [q.job_id for q in queued] == ["q1", "r1"]
    states = {r.job_id: r.state for r in j.list_jobs()}
    assert states == {"q1": "queued", "r1": "queued", "d1": "done", "x1": "failed"}
    assert j.get_job("x1").error_code == "worker_crashed"
    # a job interrupted too often is failed, not retried forever
    for _ in range(3):
        j.mark_running("r1")
        j.recover(max_attempts=3)
    assert j.get_job("r1").state == "failed"


def test_sessions_takes_and_keep(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    s = j.create_session("s1", "demo", 100.0, (3, 4), 96_000, ["bass", "drums"])
    assert (s.bpm, s.time_signature, s.length_samples, s.stems, s.kept) == (100.0, (3, 4), 96_000,
                                                                            ["bass", "drums"], [])
    with pytest.raises(InvalidArgument):
        j.create_session("s1", "again", 100.0, (4, 4), 1, ["bass"])
    with pytest.raises(UnknownSession):
        j.get_session("s2")
    with pytest.raises(UnknownTake):
        j.set_kept("s1", "bass", True)  # no take yet
    assert j.next_take_number("s1", "bass") == 1
    for n in (1, 2):
        j.add_take(TakeRow(f"t{n}", "s1", "bass", n, f"/x/t{n}.wav", None, 0, 10, 48_000, "ab", "pcm24",
                           "generated", None, time.time()))
    assert j.next_take_number("s1", "bass") == 3
    s = j.set_kept("s1", "bass", True, take_id="t1")
    assert s.kept == ["bass"] and s.active == {"bass": "t1"} and len(s.takes) == 2
    with pytest.raises(UnknownStem):
        j.set_kept("s1", "vocals", True)
    with pytest.raises(UnknownTake):
        j.set_kept("s1", "drums", True, take_id="t1")
    s = j.update_session("s1", bpm=90.5, time_signature=(7, 8))
    assert (s.bpm, s.time_signature, s.kept) == (90.5, (7, 8), ["bass"])
    j.close()
    assert Journal(tmp_path / "j.sqlite3").get_session("s1").active == {"bass": "t1"}
