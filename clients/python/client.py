"""The asyncio Python client of the Stemforge daemon (protocol v1 over WebSocket).

    async with StemforgeClient(port=8765) as sf:          # token from the daemon's data dir
        info = await sf.info()
        session = await sf.create_session(name="groove", bpm=120, length=8, length_unit="bars")
        job = await sf.generate(prompt="funky bass", session_id=session.session_id, steps=20)
        done = await job.wait(on_event=print)              # job.progress ... job.done
        audio = (await sf.download(done.takes[0].take_id)).audio   # (2, N) float32, sha256 checked

- Requests carry a client ``id``; the daemon echoes it in the reply (and in the events of the job a
  request started), so replies are matched by id, job events by ``job_id``.
- A daemon error reply is raised as the :mod:`protocol.errors` class of its wire code.
- When the connection drops (daemon restart), the client reconnects in the background with
  exponential backoff; idempotent requests are retried once, others raise :class:`ConnectionLost`,
  and a job being waited on is followed up through ``job.list`` (the daemon's journal keeps it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from clients.python.connection import DEFAULT_HOST, ConnectionLost, Endpoint
from clients.python.transfer import TransferMixin
from protocol import codec
from protocol import messages as m
from protocol.errors import ForbiddenOrigin, JobCancelled, LimitExceeded, StemforgeError, Unauthorized, error_from_dict
from protocol.messages import REPLIES, Message

logger = logging.getLogger(__name__)

#: requests that are safe to send twice (retried once after a reconnect)
IDEMPOTENT = frozenset({"ping", "server.info", "session.get", "session.list", "job.list", "concept.list",
                        "download", "audition.stop", "take.select", "keep"})
JOB_END = frozenset({"job.done", "job.failed", "job.cancelled"})
JOB_EVENTS = frozenset({"job.accepted", "job.progress", "job.preview"}) | JOB_END

EventCallback = Callable[[Message], Any]


class RequestTimeout(StemforgeError):
    """No reply within the request timeout (client side only)."""

    code = "timeout"


@dataclasses.dataclass
class _Pending:
    request: str
    replies: tuple[str, ...]
    future: asyncio.Future[Message]


class Job:
    """A job the daemon accepted: its events in order, and its outcome."""

    def __init__(self, client: StemforgeClient, accepted: m.JobAccepted) -> None:
        self.client = client
        self.accepted = accepted
        self.job_id = accepted.job_id
        self.generation = client.generation
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.outcome: Message | None = None  # the final event, once consumed
        self.ended = False  # the final event has arrived (maybe not consumed yet)

    async def events(self, poll_interval: float = 1.0) -> AsyncIterator[Message]:
        """Yield progress/preview events, then the final done/failed/cancelled event."""
        while self.outcome is None:
            try:
                event = await asyncio.wait_for(self.queue.get(), poll_interval)
            except TimeoutError:
                recovered = await self._recover()
                if recovered is None:
                    continue
                event = recovered
            if event.TYPE in JOB_END:
                self.outcome = event
                self.client._jobs.pop(self.job_id, None)
            yield event

    async def wait(self, on_event: EventCallback | None = None, timeout: float | None = None) -> m.JobDone:
        """Wait for the end of the job; returns ``job.done`` or raises the job's error (``JobCancelled``)."""

        async def drain() -> None:
            async for event in self.events():
                if on_event is not None:
                    res = on_event(event)
                    if isinstance(res, Awaitable):
                        await res

        if self.outcome is None:
            await asyncio.wait_for(drain(), timeout)
        return self.result()

    def result(self) -> m.JobDone:
        out = self.outcome
        if isinstance(out, m.JobDone):
            return out
        if isinstance(out, m.JobFailed):
            raise out.to_exception()
        if isinstance(out, m.JobCancelledEvent):
            raise JobCancelled(f"job {self.job_id} was cancelled", job_id=self.job_id)
        raise StemforgeError(f"job {self.job_id} has not ended")

    async def cancel(self) -> None:
        await self.client.cancel(self.job_id)

    async def _recover(self) -> Message | None:
        """After a reconnect the job's events went to the old connection: ask the journal."""
        if self.client.gave_up:
            raise ConnectionLost(f"lost the daemon while waiting for job {self.job_id}", job_id=self.job_id)
        if self.generation == self.client.generation or not self.client.connected:
            return None
        jobs = await self.client.jobs(session_id=self.accepted.session_id)
        info = next((j for j in jobs if j.job_id == self.job_id), None)
        if info is None:
            return m.JobFailed(job_id=self.job_id, code="unknown_job",
                               message=f"job {self.job_id} is not in the daemon's journal after a reconnect")
        if info.state == "done":
            takes: list[Any] = []
            if info.session_id:
                session = await self.client.get_session(info.session_id)
                by_id = {t.take_id: t for s in session.stems for t in s.takes}
                takes = [by_id[t] for t in info.take_ids if t in by_id]
            return m.JobDone(id=self.accepted.id, job_id=self.job_id, kind=info.kind, session_id=info.session_id,
                             takes=tuple(takes), seed=self.accepted.seed)
        if info.state == "failed":
            err = info.error or {}
            return m.JobFailed(job_id=self.job_id, code=err.get("code", "internal"),
                               message=err.get("message", "job failed"))
        if info.state == "cancelled":
            return m.JobCancelledEvent(job_id=self.job_id)
        return m.JobProgress(job_id=self.job_id, step=info.step, total=info.total, stage=info.stage)


class StemforgeClient(TransferMixin):
    """One WebSocket connection to the daemon, shared by any number of concurrent requests."""

    def __init__(self, url: str | None = None, *, host: str = DEFAULT_HOST, port: int | None = None,
                 token: str | None = None, data_dir: str | Path | None = None, reconnect: bool = True,
                 reconnect_timeout: float = 30.0, max_backoff: float = 2.0, request_timeout: float = 60.0,
                 open_timeout: float = 10.0) -> None:
        self._resolve = lambda: Endpoint.resolve(url, host, port, token, data_dir)
        self.endpoint = self._resolve()
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.generation = 0  # +1 per successful (re)connection
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._jobs: dict[str, Job] = {}
        self._listeners: set[asyncio.Queue[Message]] = set()
        self._closing = False
        self._init_transfers()

    # ---- connection ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def gave_up(self) -> bool:
        """Disconnected for good: closed, reconnection off, or the reconnect attempts ran out."""
        if self._ws is not None:
            return False
        if self._closing or not self.reconnect:
            return True
        return self._reconnector is not None and self._reconnector.done()

    async def __aenter__(self) -> StemforgeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect (with backoff up to ``reconnect_timeout`` when ``reconnect`` is on)."""
        self._closing = False
        await self._ensure_connected()

    async def close(self) -> None:
        self._closing = True
        for task in (self._reconnector, self._reader):
            if task is not None and not task.done():
                task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        self._fail_pending(ConnectionLost("client closed"))

    async def _ensure_connected(self) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._ws is not None:
                return self._ws
            if self._closing:
                raise ConnectionLost("client closed")
            deadline = time.monotonic() + (self.reconnect_timeout if self.reconnect else 0.0)
            delay = 0.05
            while True:
                try:
                    return await self._open()
                except ConnectionLost as exc:
                    if time.monotonic() + delay > deadline:
                        raise ConnectionLost(f"cannot reach the daemon at {self.endpoint.url}: {exc.message}",
                                             url=self.endpoint.url) from None
                    logger.debug("connect failed (%s); retrying in %.2f s", exc.message, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)

    async def _open(self) -> Any:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        self.endpoint = self._resolve()  # re-read the token file: a restarted daemon may have a new one
        try:
            ws = await connect(self.endpoint.url, additional_headers=self.endpoint.headers(), compression=None,
                               max_size=None, open_timeout=self.open_timeout, proxy=None, ping_interval=20,
                               ping_timeout=20, max_queue=64)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
            if status == 401:
                raise Unauthorized(f"the daemon refused the token: {body or 'HTTP 401'}", status=status) from None
            if status == 403:
                raise ForbiddenOrigin(f"the daemon refused the connection: {body or 'HTTP 403'}",
                                      status=status) from None
            if status == 503:
                raise LimitExceeded(f"the daemon refused the connection: {body or 'HTTP 503'}",
                                    status=status) from None
            raise ConnectionLost(f"handshake failed with HTTP {status}: {body}", status=status) from None
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from None
        self._ws = ws
        self.generation += 1
        self._reader = asyncio.create_task(self._read(ws), name="stemforge-client-reader")
        logger.debug("connected to %s (connection %d)", self.endpoint.url, self.generation)
        return ws

    async def _read(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in ws:
                if isinstance(frame, str):
                    self._on_text(frame)
                else:
                    self._on_binary(frame)
        except ConnectionClosed:
            pass
        except Exception:  # a bug in a handler must not leave requests hanging silently
            logger.exception("client reader failed")
        finally:
            if self._ws is ws:
                self._ws = None
                self._fail_pending(ConnectionLost(f"connection to {self.endpoint.url} lost"))
                if self.reconnect and not self._closing:
                    self._reconnector = asyncio.create_task(self._reconnect(), name="stemforge-client-reconnect")

    async def _retire(self, ws: Any) -> None:
        """A send failed on ``ws``: give its reader the moment it needs to notice the closed connection (it fails
        the requests waiting on it and starts the reconnect), so that a retry does not take the same dead socket;
        if the reader has not noticed within ``open_timeout``, drop the socket here."""
        reader = self._reader
        if self._ws is ws and reader is not None and not reader.done():
            await asyncio.wait({reader}, timeout=self.open_timeout)
        if self._ws is ws:
            self._ws = None

    async def _reconnect(self) -> None:
        try:
            await self._ensure_connected()
        except StemforgeError as exc:
            logger.warning("reconnect gave up: %s", exc.message)

    def _fail_pending(self, exc: StemforgeError) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._fail_transfers(exc)

    # ---- incoming --------------------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        try:
            msg = codec.decode_event(text)
        except StemforgeError as exc:
            logger.warning("ignoring an undecodable message from the daemon: %s", exc.message)
            return
        for q in list(self._listeners):
            q.put_nowait(msg)
        if isinstance(msg, m.JobDone):
            self.remember_take_paths([*msg.takes, msg.mix])
        elif isinstance(msg, m.Session):
            self.remember_take_paths([t for s in msg.session.stems for t in s.takes])
        if msg.TYPE in JOB_EVENTS and msg.TYPE != "job.accepted":
            job = self._jobs.get(msg.job_id)  # type: ignore[attr-defined]
            if job is not None:  # the handle leaves _jobs when its final event is consumed
                job.ended = job.ended or msg.TYPE in JOB_END
                job.queue.put_nowait(msg)
                return
        if self._route_transfer(msg):
            return
        pending = self._pending.get(msg.id) if isinstance(msg.id, int) else None
        if pending is None or pending.future.done():
            if msg.TYPE == "error":
                logger.warning("daemon error: [%s] %s", msg.code, msg.message)  # type: ignore[attr-defined]
            return
        if msg.TYPE == "error":
            pending.future.set_exception(msg.to_exception())  # type: ignore[attr-defined]
        elif msg.TYPE in pending.replies:
            if isinstance(msg, m.JobAccepted):
                self._track(Job(self, msg))
            self._open_transfer(msg)
            pending.future.set_result(msg)

    def _track(self, job: Job) -> None:
        """Route this job's events to it; forget the oldest unwatched ended jobs past 256 handles."""
        self._jobs[job.job_id] = job
        if len(self._jobs) > 256:
            for job_id, old in list(self._jobs.items()):
                if old.ended and len(self._jobs) > 256:
                    self._jobs.pop(job_id, None)

    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue receiving every event from now on (call :meth:`unsubscribe` when done)."""
        q: asyncio.Queue[Message] = asyncio.Queue()
        self._listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Message]) -> None:
        self._listeners.discard(q)

    # ---- requests --------------------------------------------------------------------------------
    async def request(self, msg: Message, timeout: float | None = None) -> Message:
        """Send ``msg`` and return its direct reply (see ``protocol.messages.REPLIES``); raise its error."""
        replies = REPLIES.get(msg.TYPE)
        if replies is None:
            raise StemforgeError(f"{msg.TYPE!r} is not a request type")
        for attempt in (0, 1):
            ws = await self._ensure_connected()
            rid = next(self._ids)
            out = dataclasses.replace(msg, id=rid)
            fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self._pending[rid] = _Pending(msg.TYPE, replies, fut)
            try:
                try:
                    await ws.send(codec.encode(out))
                except Exception as exc:  # ConnectionClosed while sending
                    self._pending.pop(rid, None)
                    await self._retire(ws)
                    raise ConnectionLost(f"connection lost while sending {msg.TYPE}: {exc}") from None
                return await asyncio.wait_for(fut, timeout or self.request_timeout)
            except TimeoutError:
                raise RequestTimeout(f"no reply to {msg.TYPE} within {timeout or self.request_timeout} s") from None
            except ConnectionLost:
                if attempt == 0 and self.reconnect and msg.TYPE in IDEMPOTENT and not self._closing:
                    logger.info("retrying %s after a reconnect", msg.TYPE)
                    continue
                raise
            finally:
                self._pending.pop(rid, None)
        raise AssertionError("unreachable")

    async def ping(self) -> float:
        """Round trip of ``ping`` -> ``pong`` in seconds."""
        t0 = time.perf_counter()
        await self.request(m.Ping())
        return time.perf_counter() - t0

    async def info(self) -> m.ServerInfo:
        return await self.request(m.ServerInfoRequest())  # type: ignore[return-value]

    async def create_session(self, **fields: Any) -> m.SessionInfo:
        """Fields of :class:`protocol.messages.SessionCreate`: name, bpm, time_signature, length, length_unit, stems."""
        reply = await self.request(m.SessionCreate(**fields))
        return reply.session  # type: ignore[attr-defined,no-any-return]

    async def get_session(self, session_id: str | None = None) -> m.SessionInfo:
        reply = await self.request(m.SessionGet(session_id=session_id))
        return reply.session  # type: ignore[attr-defined,no-any-return]

    async def update_session(self, session_id: str, **fields: Any) -> m.SessionInfo:
        reply = await self.request(m.SessionUpdate(session_id=session_id, **fields))
        return reply.session  # type: ignore[attr-defined,no-any-return]

    async def sessions(self) -> tuple[m.SessionInfo, ...]:
        reply = await self.request(m.SessionList())
        return reply.sessions  # type: ignore[attr-defined,no-any-return]

    async def keep(self, stem: str, take_id: str | None = None, keep: bool = True,
                   session_id: str | None = None) -> m.SessionInfo:
        reply = await self.request(m.Keep(session_id=session_id, stem=stem, take_id=take_id, keep=keep))
        return reply.session  # type: ignore[attr-defined,no-any-return]

    async def select_take(self, stem: str, take_id: str, session_id: str | None = None) -> m.SessionInfo:
        reply = await self.request(m.TakeSelect(session_id=session_id, stem=stem, take_id=take_id))
        return reply.session  # type: ignore[attr-defined,no-any-return]

    async def submit(self, msg: m.Generate | m.Inpaint | m.Continue | m.ConceptTrain) -> Job:
        """Queue a job; returns once the daemon has journaled it (``job.accepted``)."""
        accepted = await self.request(msg)
        job = self._jobs.get(accepted.job_id)  # type: ignore[attr-defined]
        if job is None:  # pruned already (hundreds of jobs in flight): follow it through job.list
            job = Job(self, accepted)  # type: ignore[arg-type]
            job.generation = -1
        return job

    async def generate(self, **fields: Any) -> Job:
        return await self.submit(m.Generate(**_regionize(fields)))

    async def inpaint(self, **fields: Any) -> Job:
        return await self.submit(m.Inpaint(**_regionize(fields)))

    async def continue_(self, **fields: Any) -> Job:
        return await self.submit(m.Continue(**fields))

    async def jobs(self, session_id: str | None = None, active_only: bool = False) -> tuple[m.JobInfo, ...]:
        reply = await self.request(m.JobList(session_id=session_id, active_only=active_only))
        return reply.jobs  # type: ignore[attr-defined,no-any-return]

    async def cancel(self, job_id: str) -> None:
        await self.request(m.JobCancel(job_id=job_id))

    async def audition_play(self, **fields: Any) -> m.AuditionStarted:
        """Fields of :class:`protocol.messages.AuditionPlay` (take_id, session_id, loop, device)."""
        return await self.request(m.AuditionPlay(**_regionize(fields, "loop")))  # type: ignore[return-value]

    async def audition_stop(self, audition_id: str | None = None) -> None:
        await self.request(m.AuditionStop(audition_id=audition_id))


def _regionize(fields: dict[str, Any], key: str = "region") -> dict[str, Any]:
    """Accept a region as a dict (``{"unit": "bars", "start": 1, "end": 3}``) as well as a Region."""
    value = fields.get(key)
    if isinstance(value, dict):
        fields = {**fields, key: m.Region(**value)}
    return fields


def error_text(exc: BaseException) -> str:
    """``error [code]: message`` as the CLI and other clients show a daemon error."""
    if isinstance(exc, StemforgeError):
        return f"error [{exc.code}]: {exc.message}"
    return f"error [internal]: {exc}"


__all__ = ["StemforgeClient", "Job", "ConnectionLost", "RequestTimeout", "error_text", "error_from_dict",
           "IDEMPOTENT"]
