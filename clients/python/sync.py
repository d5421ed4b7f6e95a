"""A blocking wrapper of :class:`StemforgeClient` for scripts and DAW hosts without asyncio (REAPER).

The async client runs on an event loop in a daemon thread; each call blocks the caller only::

    with SyncClient(port=8765) as sf:
        print(sf.ping())
        done = sf.generate(prompt="funky bass", steps=20, on_event=print)   # waits for job.done
        audio = sf.download(done.takes[0].take_id).audio
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from clients.python.client import EventCallback, RequestTimeout, StemforgeClient
from clients.python.transfer import Download
from protocol import messages as m

T = TypeVar("T")


class SyncClient:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Same arguments as :class:`StemforgeClient`; connects immediately."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stemforge-sync-client", daemon=True)
        self._thread.start()
        self._client = self._call(self._make(*args, **kwargs))
        self.endpoint = self._client.endpoint

    @staticmethod
    async def _make(*args: Any, **kwargs: Any) -> StemforgeClient:
        client = StemforgeClient(*args, **kwargs)
        await client.connect()
        return client

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise RequestTimeout(f"no result within {timeout} s") from None

    @property
    def async_client(self) -> StemforgeClient:
        return self._client

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests (see StemforgeClient for the arguments) ----------------------------------------
    def ping(self) -> float:
        return self._call(self._client.ping())

    def info(self) -> m.ServerInfo:
        return self._call(self._client.info())

    def create_session(self, **fields: Any) -> m.SessionInfo:
        return self._call(self._client.create_session(**fields))

    def get_session(self, session_id: str | None = None) -> m.SessionInfo:
        return self._call(self._client.get_session(session_id))

    def keep(self, stem: str, take_id: str | None = None, keep: bool = True,
             session_id: str | None = None) -> m.SessionInfo:
        return self._call(self._client.keep(stem, take_id, keep, session_id))

    def _job(self, submit: Coroutine[Any, Any, Any], on_event: EventCallback | None,
             wait: bool) -> m.JobDone | m.JobAccepted:
        async def run() -> m.JobDone | m.JobAccepted:
            job = await submit
            return await job.wait(on_event=on_event) if wait else job.accepted

        return self._call(run())

    def generate(self, on_event: EventCallback | None = None, wait: bool = True, **fields: Any) -> Any:
        """Queue a generate job; with ``wait`` (default) block until ``job.done`` (raises on failure)."""
        return self._job(self._client.generate(**fields), on_event, wait)

    def inpaint(self, on_event: EventCallback | None = None, wait: bool = True, **fields: Any) -> Any:
        return self._job(self._client.inpaint(**fields), on_event, wait)

    def continue_(self, on_event: EventCallback | None = None, wait: bool = True, **fields: Any) -> Any:
        return self._job(self._client.continue_(**fields), on_event, wait)

    def upload(self, source: Any, **kwargs: Any) -> m.UploadDone:
        return self._call(self._client.upload(source, **kwargs))

    def download(self, take_id: str, **kwargs: Any) -> Download:
        return self._call(self._client.download(take_id, **kwargs))

    def audition_play(self, **fields: Any) -> m.AuditionStarted:
        return self._call(self._client.audition_play(**fields))

    def audition_stop(self, audition_id: str | None = None) -> None:
        self._call(self._client.audition_stop(audition_id))

    def jobs(self, session_id: str | None = None, active_only: bool = False) -> tuple[m.JobInfo, ...]:
        return self._call(self._client.jobs(session_id, active_only))

    def cancel(self, job_id: str) -> None:
        self._call(self._client.cancel(job_id))
