"""The durable journal: jobs, sessions and takes in SQLite (WAL mode, ``synchronous=FULL``).

A job is inserted (and committed) before the client is told it was accepted. Every state change is
guarded (``UPDATE ... WHERE state IN ('queued', 'running')``), so a job reaches exactly one terminal
state (done, failed or cancelled) and never leaves it. :meth:`Journal.recover` runs at start-up:
jobs a killed daemon left queued or running are queued again, or failed with a clear code when
they cannot be resumed (unknown kind, too many attempts).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument, UnknownJob, UnknownSession, UnknownStem, UnknownTake

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "cancelled")
ACTIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    session_id TEXT,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    bpm REAL NOT NULL,
    ts_num INTEGER NOT NULL,
    ts_den INTEGER NOT NULL,
    length_samples INTEGER NOT NULL,
    stems TEXT NOT NULL,          -- JSON list of stem names (lane order)
    active TEXT NOT NULL,         -- JSON {stem: take_id}
    kept TEXT NOT NULL,           -- JSON list of kept stems
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS takes (
    take_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    stem TEXT NOT NULL,
    number INTEGER NOT NULL,
    path TEXT NOT NULL,
    manifest_path TEXT,
    start_sample INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    sample_rate INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    job_id TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS takes_session ON takes (session_id, stem, number);
"""


@dataclass
class JobRow:
    job_id: str
    session_id: str | None
    kind: str
    request: dict[str, Any]
    state: str
    created: float
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class TakeRow:
    take_id: str
    session_id: str
    stem: str
    number: int
    path: str
    manifest_path: str | None
    start_sample: int
    frames: int
    sample_rate: int
    sha256: str
    format: str
    source: str
    job_id: str | None
    created: float


@dataclass
class SessionRow:
    session_id: str
    name: str
    bpm: float
    time_signature: tuple[int, int]
    length_samples: int
    stems: list[str]
    active: dict[str, str]
    kept: list[str]
    created: float
    updated: float
    takes: list[TakeRow] = field(default_factory=list)


class Journal:
    """One SQLite connection, serialised by a lock (callers may use it from the loop or a thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {self.path} (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    # ---- jobs ----------------------------------------------------------------------------------
    def add_job(self, job_id: str, kind: str, request: dict[str, Any], session_id: str | None = None) -> JobRow:
        now = time.time()
        self._tx("INSERT INTO jobs (job_id, session_id, kind, request, state, created) VALUES (?, ?, ?, ?, 'queued', ?)",
                 (job_id, session_id, kind, json.dumps(request, sort_keys=True), now))
        return JobRow(job_id, session_id, kind, request, "queued", now)

    def mark_running(self, job_id: str) -> bool:
        cur = self._tx("UPDATE jobs SET state='running', started=?, attempts=attempts+1 "
                       "WHERE job_id=? AND state='queued'", (time.time(), job_id))
        return cur.rowcount == 1

    def mark_done(self, job_id: str, result: dict[str, Any]) -> bool:
        return self._finish(job_id, "done", result=result)

    def mark_failed(self, job_id: str, code: str, message: str) -> bool:
        return self._finish(job_id, "failed", code=code, message=message)

    def mark_cancelled(self, job_id: str, message: str = "cancelled by the client") -> bool:
        return self._finish(job_id, "cancelled", code="cancelled", message=message)

    def _finish(self, job_id: str, state: str, result: dict[str, Any] | None = None, code: str | None = None,
                message: str | None = None) -> bool:
        cur = self._tx("UPDATE jobs SET state=?, finished=?, result=?, error_code=?, error_message=? "
                       "WHERE job_id=? AND state IN ('queued', 'running')",
                       (state, time.time(), json.dumps(result) if result is not None else None, code, message,
                        job_id))
        return cur.rowcount == 1

    def requeue(self, job_id: str) -> bool:
        cur = self._tx("UPDATE jobs SET state='queued', started=NULL WHERE job_id=? AND state='running'", (job_id,))
        return cur.rowcount == 1

    def get_job(self, job_id: str) -> JobRow:
        row = self._tx("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(f"unknown job {job_id!r}", job_id=job_id)
        return _job(row)

    def list_jobs(self, session_id: str | None = None, states: Iterable[str] | None = None,
                  limit: int = 200) -> list[JobRow]:
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if session_id is not None:
            sql += " AND session_id=?"
            args.append(session_id)
        if states is not None:
            states = list(states)
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY created DESC LIMIT ?"
        args.append(limit)
        return [_job(r) for r in self._tx(sql, args).fetchall()]

    def recover(self, resumable: Callable[[JobRow], bool] = lambda job: True, max_attempts: int = 3) -> list[JobRow]:
        """After a restart: re-queue interrupted jobs (oldest first) or fail them; returns the queued ones."""
        out = []
        for job in sorted(self.list_jobs(states=ACTIVE, limit=1_000_000), key=lambda j: j.created):
            if not resumable(job):
                self.mark_failed(job.job_id, "worker_crashed",
                                 f"job {job.job_id} ({job.kind}) was interrupted by a daemon restart and cannot resume")
            elif job.attempts >= max_attempts:
                self.mark_failed(job.job_id, "worker_crashed",
                                 f"job {job.job_id} was interrupted {job.attempts} times; giving up")
            else:
                if job.state == "running":
                    self.requeue(job.job_id)
                    job.state = "queued"
                out.append(job)
        if out:
            log.info("journal: %d interrupted job(s) queued again", len(out))
        return out

    # ---- sessions ------------------------------------------------------------------------------
    def create_session(self, session_id: str, name: str, bpm: float, time_signature: tuple[int, int],
                       length_samples: int, stems: list[str]) -> SessionRow:
        now = time.time()
        try:
            self._tx("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, '{}', '[]', ?, ?)",
                     (session_id, name, float(bpm), int(time_signature[0]), int(time_signature[1]),
                      int(length_samples), json.dumps(list(stems)), now, now))
        except sqlite3.IntegrityError:
            raise InvalidArgument(f"session {session_id!r} already exists", field="session_id") from None
        return self.get_session(session_id)

    def update_session(self, session_id: str, **changes: Any) -> SessionRow:
        cur = self.get_session(session_id)
        cols = {"name": changes.get("name", cur.name), "bpm": float(changes.get("bpm", cur.bpm)),
                "length_samples": int(changes.get("length_samples", cur.length_samples))}
        ts = changes.get("time_signature", cur.time_signature)
        stems = list(changes.get("stems", cur.stems))
        self._tx("UPDATE sessions SET name=?, bpm=?, ts_num=?, ts_den=?, length_samples=?, stems=?, updated=? "
                 "WHERE session_id=?", (cols["name"], cols["bpm"], int(ts[0]), int(ts[1]), cols["length_samples"],
                                        json.dumps(stems), time.time(), session_id))
        return self.get_session(session_id)

    def get_session(self, session_id: str) -> SessionRow:
        row = self._tx("SELECT * FROM sessions WHERE session_id=?", (session_id,)).fetchone()
        if row is None:
            raise UnknownSession(f"unknown session {session_id!r}", session_id=session_id)
        takes = [_take(r) for r in self._tx("SELECT * FROM takes WHERE session_id=? ORDER BY stem, number",
                                            (session_id,)).fetchall()]
        return SessionRow(row["session_id"], row["name"], row["bpm"], (row["ts_num"], row["ts_den"]),
                          row["length_samples"], json.loads(row["stems"]), json.loads(row["active"]),
                          json.loads(row["kept"]), row["created"], row["updated"], takes)

    def list_sessions(self) -> list[str]:
        return [r[0] for r in self._tx("SELECT session_id FROM sessions ORDER BY created").fetchall()]

    def set_kept(self, session_id: str, stem: str, kept: bool, take_id: str | None = None) -> SessionRow:
        """Keep (or release) a stem; ``take_id`` (optional) also makes that take the stem's active take."""
        with self._lock:
            s = self.get_session(session_id)
            if stem not in s.stems:
                raise UnknownStem(f"session {session_id!r} has no stem {stem!r}; stems: {s.stems}", stem=stem)
            if take_id is not None:
                t = self.get_take(take_id)
                if t.session_id != session_id or t.stem != stem:
                    raise UnknownTake(f"take {take_id!r} is not a {stem} take of session {session_id!r}",
                                      take_id=take_id)
                s.active[stem] = take_id
            if kept and stem not in s.active:
                raise UnknownTake(f"stem {stem!r} of session {session_id!r} has no take to keep yet", stem=stem)
            kept_set = [x for x in s.kept if x != stem] + ([stem] if kept else [])
            self._tx("UPDATE sessions SET active=?, kept=?, updated=? WHERE session_id=?",
                     (json.dumps(s.active), json.dumps(kept_set), time.time(), session_id))
        return self.get_session(session_id)

    # ---- takes ---------------------------------------------------------------------------------
    def next_take_number(self, session_id: str, stem: str) -> int:
        row = self._tx("SELECT MAX(number) FROM takes WHERE session_id=? AND stem=?", (session_id, stem)).fetchone()
        return int(row[0] or 0) + 1

    def add_take(self, take: TakeRow, make_active: bool = True) -> TakeRow:
        with self._lock:
            self._tx("BEGIN IMMEDIATE")
            try:
                self._tx("INSERT INTO takes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (take.take_id, take.session_id, take.stem, take.number, take.path, take.manifest_path,
                          take.start_sample, take.frames, take.sample_rate, take.sha256, take.format, take.source,
                          take.job_id, take.created))
                if make_active:
                    row = self._tx("SELECT active FROM sessions WHERE session_id=?", (take.session_id,)).fetchone()
                    active = json.loads(row[0])
                    active[take.stem] = take.take_id
                    self._tx("UPDATE sessions SET active=?, updated=? WHERE session_id=?",
                             (json.dumps(active), time.time(), take.session_id))
                self._tx("COMMIT")
            except BaseException:
                self._tx("ROLLBACK")
                raise
        return take

    def get_take(self, take_id: str) -> TakeRow:
        row = self._tx("SELECT * FROM takes WHERE take_id=?", (take_id,)).fetchone()
        if row is None:
            raise UnknownTake(f"unknown take {take_id!r}", take_id=take_id)
        return _take(row)


def _job(r: sqlite3.Row) -> JobRow:
    return JobRow(r["job_id"], r["session_id"], r["kind"], json.loads(r["request"]), r["state"], r["created"],
                  r["started"], r["finished"], r["attempts"], json.loads(r["result"]) if r["result"] else None,
                  r["error_code"], r["error_message"])


def _take(r: sqlite3.Row) -> TakeRow:
    return TakeRow(**{k: r[k] for k in r.keys()})


__all__ = ["Journal", "JobRow", "TakeRow", "SessionRow", "TERMINAL", "ACTIVE"]
