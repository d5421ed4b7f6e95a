"""A Stemforge job run off REAPER's main thread, reporting through a queue the script polls.

REAPER runs ReaScripts on its main (UI) thread and its API may only be called there; a job takes
seconds to minutes. :class:`JobThread` does the daemon work (session, job, wait) in a background
thread through the Python client (:class:`clients.python.sync.SyncClient`, which reconnects when the
daemon restarts and follows a job up through the daemon's journal), and puts events on
``self.events``; the script's deferred ``poll()`` drains them on the main thread: the UI never waits
on the network and REAPER's audio thread is never involved.

Events: ``("status", text)``, ``("progress", step, total, stage)``, ``("session", session_dict)``,
``("done", [take dicts], session_dict)``, ``("error", "code: message")``.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from pathlib import Path
from typing import Any

from clients.reaper import reaper_logic as logic


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


class JobThread(threading.Thread):
    def __init__(self, *, mode: str, selection: logic.Selection, bpm: float, time_signature: tuple[int, int],
                 project_name: str, session_id: str | None, prompt: str = "", stems: list[str] | None = None,
                 steps: int | None = None, seed: int | None = None, data_dir: str | Path | None = None,
                 url: str | None = None, token: str | None = None, timeout: float = 3600.0) -> None:
        super().__init__(name="stemforge-reaper-job", daemon=True)
        self.mode, self.selection, self.bpm, self.time_signature = mode, selection, bpm, time_signature
        self.project_name, self.session_id, self.prompt, self.stems = project_name, session_id, prompt, stems
        self.steps, self.seed, self.timeout = steps, seed, timeout
        self.connect_kwargs = {"data_dir": data_dir, "url": url, "token": token}
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.cancel_requested = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - everything is reported to the user as the daemon said it
            self.events.put(("error", logic.error_text(exc)))

    def _session(self, client: Any) -> dict[str, Any]:
        from protocol.errors import UnknownSession

        current = None
        if self.session_id:
            try:
                current = _plain(client.get_session(self.session_id))
            except UnknownSession:
                current = None
        fields = logic.session_fields(self.project_name, self.bpm, self.time_signature, self.selection, current)
        if fields is None:
            return current  # type: ignore[return-value]
        if current is None:
            return _plain(client.create_session(**fields))
        sid = fields.pop("session_id")
        return _plain(client._call(client.async_client.update_session(sid, **fields)))

    def _run(self) -> None:
        from clients.python.sync import SyncClient

        kwargs = {k: v for k, v in self.connect_kwargs.items() if v is not None}
        self.events.put(("status", "Stemforge: connecting"))
        with SyncClient(request_timeout=120, **kwargs) as client:
            session = self._session(client)
            self.events.put(("session", session))
            kind, fields = logic.job_fields(self.mode, session, self.selection, self.prompt, self.stems,
                                            self.steps, self.seed)

            def on_event(ev: Any) -> None:
                if getattr(ev, "TYPE", "") == "job.progress":
                    self.events.put(("progress", ev.step, ev.total, ev.stage))
                if self.cancel_requested.is_set() and getattr(ev, "job_id", None):
                    self.cancel_requested.clear()
                    threading.Thread(target=client.cancel, args=(ev.job_id,), daemon=True).start()

            self.events.put(("status", f"Stemforge: {kind} sent"))
            submit = client.inpaint if kind == "inpaint" else client.generate
            done = submit(on_event=on_event, timeout=self.timeout, **fields) if _accepts_timeout(submit) \
                else submit(on_event=on_event, **fields)
            session = _plain(client.get_session(session["session_id"]))
            self.events.put(("done", _plain(list(done.takes)), session))


def _accepts_timeout(fn: Any) -> bool:
    import inspect

    try:
        return "timeout" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["JobThread"]
