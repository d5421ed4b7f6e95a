"""The job queue: journaled submission, one runner feeding the engine worker, cancel, events.

``submit`` writes the job to the journal (committed) before it returns, so the caller can
acknowledge it. One runner task takes jobs in order and hands them to the executor registered for
their kind (``executors[kind] = async fn(job, ctx) -> JobDone``); generation kinds are in
:mod:`daw_bridge.render`, other features (concept training) register their own. Every job ends in
exactly one of done, failed or cancelled, in the journal and as one event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from daw_bridge.journal import ACTIVE, JobRow, Journal
from protocol.codec import to_dict
from protocol.errors import InvalidArgument, JobCancelled, LimitExceeded, StemforgeError
from protocol.messages import JobCancelledEvent, JobDone, JobFailed, JobInfo, JobProgress, Message

log = logging.getLogger(__name__)

EmitFn = Callable[[str, Message], None]


@dataclass
class JobContext:
    """What an executor gets besides the journaled job: progress reporting and cancel state."""

    job: JobRow
    emit_progress: Callable[[int, int, str], None]
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.job_id} cancelled", job_id=self.job.job_id)


Executor = Callable[[JobRow, JobContext], Awaitable[JobDone]]


class JobQueue:
    def __init__(self, journal: Journal, emit: EmitFn, *, max_queued: int = 64, max_attempts: int = 3,
                 cancel_running: Callable[[str], bool] | None = None) -> None:
        self.journal = journal
        self.emit = emit
        self.max_queued = max_queued
        self.max_attempts = max_attempts
        self.executors: dict[str, Executor] = {}
        self.cancel_running = cancel_running  # e.g. EngineWorker.cancel
        self.progress: dict[str, tuple[int, int, str]] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: list[str] = []  # queued job ids, in order (for positions)
        self._running: JobContext | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> list[JobRow]:
        """Recover interrupted jobs from the journal, then start the runner; returns the re-queued jobs."""
        recovered = self.journal.recover(resumable=lambda job: job.kind in self.executors,
                                         max_attempts=self.max_attempts)
        for job in recovered:
            self._enqueue(job.job_id)
        self._task = asyncio.create_task(self._run_forever(), name="stemforge-job-runner")
        return recovered

    async def stop(self) -> None:
        """Stop taking jobs. A running job is left 'running' in the journal and resumes after restart."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    # ---- API -----------------------------------------------------------------------------------
    def submit(self, kind: str, request: dict[str, Any], session_id: str | None, job_id: str) -> tuple[JobRow, int]:
        """Journal the job (durably) and queue it; returns the row and its queue position."""
        if kind not in self.executors:
            raise InvalidArgument(f"job kind {kind!r} is not available in this daemon", kind=kind)
        if len(self._pending) >= self.max_queued:
            raise LimitExceeded(f"{len(self._pending)} jobs are queued (limit {self.max_queued}); try later",
                                limit=self.max_queued)
        row = self.journal.add_job(job_id, kind, request, session_id=session_id)
        position = len(self._pending) + (1 if self._running else 0)
        self._enqueue(job_id)
        return row, position

    def _enqueue(self, job_id: str) -> None:
        self._pending.append(job_id)
        self.progress[job_id] = (0, 0, "queued")
        self._queue.put_nowait(job_id)

    def cancel(self, job_id: str) -> str:
        """Cancel a queued job now, or ask the running one to stop; returns the job's state after the call."""
        row = self.journal.get_job(job_id)  # raises UnknownJob
        if row.state not in ACTIVE:
            raise InvalidArgument(f"job {job_id} already ended ({row.state})", job_id=job_id, state=row.state)
        running = self._running
        if running is not None and running.job.job_id == job_id:
            running.cancelled.set()
            if self.cancel_running is not None:
                self.cancel_running(job_id)
            return "running"
        if self.journal.mark_cancelled(job_id):
            if job_id in self._pending:
                self._pending.remove(job_id)
            self.progress.pop(job_id, None)
            self.emit(job_id, JobCancelledEvent(job_id=job_id))
            return "cancelled"
        return self.journal.get_job(job_id).state

    def info(self, row: JobRow) -> JobInfo:
        step, total, stage = self.progress.get(row.job_id, (0, 0, row.state))
        take_ids: tuple[str, ...] = ()
        if row.result:
            take_ids = tuple(t.get("take_id", "") for t in row.result.get("takes", []))
        error = {"code": row.error_code or "", "message": row.error_message or ""} if row.state == "failed" else None
        return JobInfo(job_id=row.job_id, kind=row.kind, state=row.state, session_id=row.session_id,  # type: ignore[arg-type]
                       step=step, total=total, stage=stage if row.state in ACTIVE else row.state,
                       created=row.created, error=error, take_ids=take_ids)

    # ---- runner --------------------------------------------------------------------------------
    async def _run_forever(self) -> None:
        while True:
            job_id = await self._queue.get()
            if job_id in self._pending:
                self._pending.remove(job_id)
            try:
                await self._run_one(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the runner must survive anything
                log.exception("job runner: unexpected error around job %s", job_id)

    async def _run_one(self, job_id: str) -> None:
        row = self.journal.get_job(job_id)
        if row.state != "queued" or not self.journal.mark_running(job_id):
            return  # cancelled while queued
        row = self.journal.get_job(job_id)

        def emit_progress(step: int, total: int, stage: str) -> None:
            self.progress[job_id] = (step, total, stage)
            try:
                self.emit(job_id, JobProgress(job_id=job_id, step=max(0, min(step, total)) if total else 0,
                                              total=max(total, 0), stage=stage))
            except StemforgeError:
                log.debug("progress event refused for job %s: %s/%s", job_id, step, total)

        ctx = JobContext(job=row, emit_progress=emit_progress)
        self._running = ctx
        started = time.monotonic()
        try:
            executor = self.executors[row.kind]
            done = await executor(row, ctx)  # executors check ctx.cancelled up to the point they commit results
            if self.journal.mark_done(job_id, to_dict(done)):
                self.emit(job_id, done)
            log.info("job %s (%s) done in %.1f s", job_id, row.kind, time.monotonic() - started)
        except JobCancelled:
            if self.journal.mark_cancelled(job_id):
                self.emit(job_id, JobCancelledEvent(job_id=job_id))
            log.info("job %s cancelled", job_id)
        except StemforgeError as exc:
            if self.journal.mark_failed(job_id, exc.code, exc.message):
                self.emit(job_id, JobFailed(job_id=job_id, code=exc.code, message=exc.message,
                                            details=_json_safe(exc.details) or None))
            log.warning("job %s failed [%s]: %s", job_id, exc.code, exc.message)
        except asyncio.CancelledError:
            raise  # daemon shutting down: the job stays 'running' and is resumed after restart
        except Exception as exc:  # noqa: BLE001 - a bug fails the job, never the daemon
            log.exception("job %s failed with an internal error", job_id)
            msg = f"internal error: {type(exc).__name__}: {exc}"
            if self.journal.mark_failed(job_id, "internal", msg):
                self.emit(job_id, JobFailed(job_id=job_id, code="internal", message=msg))
        finally:
            self._running = None
            self.progress.pop(job_id, None)


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in details.items():
        out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
    return out


__all__ = ["JobQueue", "JobContext", "Executor"]
