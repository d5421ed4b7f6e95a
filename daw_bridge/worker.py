"""The engine worker: the model runs in a separate process, so a crash or out-of-memory fails one job, not the daemon.

Parent side (:class:`EngineWorker`, used from the asyncio loop) and child side (:func:`_child_main`,
started with the ``spawn`` context) talk over one :func:`multiprocessing.Pipe` with tuples:

    parent -> child   ("run", seq, job_id, payload)      ("stop",)
    child -> parent   ("ready", info)                     ("load_failed", code, message)
                      ("progress", seq, step, total, stage)
                      ("done", seq, result)               ("failed", seq, code, message, details)

The child loads the model once through a *runner* module (``load(model, threads, device) -> (state, info)`` and
``run(state, payload, progress) -> result``; the real one is :mod:`daw_bridge.engine_runner`).
Progress is rate-limited in the child (at most ``PROGRESS_HZ`` per second, plus the last step).
Cancel is a shared integer holding the sequence number of the job to cancel; the progress callback,
called by the sampler at every step, raises :class:`JobCancelled` when it matches, so sampling stops
within one step. A reader thread turns pipe EOF (the child died: crash, OOM, ``kill -9``) into a
:class:`WorkerCrashed` failure of the running job, and the worker is started again.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from protocol.errors import JobCancelled, ModelError, StemforgeError, WorkerCrashed

log = logging.getLogger(__name__)

PROGRESS_HZ = 10.0
DEFAULT_RUNNER = "daw_bridge.engine_runner"
MAX_LOAD_FAILURES = 3  # consecutive deaths before the model is loaded: give up

ProgressFn = Callable[[int, int, str], None]


# ==== child process ============================================================================
def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the daemon dies (``kill -9`` of the daemon leaves no orphan)."""
    try:
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_main(conn: Connection, cancel: Any, runner_name: str, model: str | None, threads: int | None,
                device: str | None) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the daemon, which stops us cleanly
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    try:
        runner = importlib.import_module(runner_name)
        state, info = runner.load(model, threads, device)
    except StemforgeError as exc:
        conn.send(("load_failed", exc.code, exc.message))
        return
    except BaseException as exc:  # noqa: BLE001 - report anything that stops the model loading
        conn.send(("load_failed", "model_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {**info, "pid": os.getpid()}))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the daemon went away
        if msg[0] == "stop":
            logging.shutdown()
            conn.close()
            os._exit(0)  # nothing to flush here (the daemon writes all files); skip slow torch teardown
        _, seq, job_id, payload = msg
        last = [0.0]

        def progress(step: int, total: int, stage: str = "sampling", _seq: int = seq) -> None:
            if cancel.value == _seq:
                raise JobCancelled(f"job {job_id} cancelled", job_id=job_id)
            now = time.monotonic()
            if step >= total or now - last[0] >= 1.0 / PROGRESS_HZ:
                last[0] = now
                conn.send(("progress", _seq, int(step), int(total), stage))

        try:
            from daw_bridge.concept_jobs import run_in_worker  # concept.train, or <NAME> concepts applied

            result = run_in_worker(runner, state, payload, progress)
            if cancel.value == seq:
                raise JobCancelled(f"job {job_id} cancelled", job_id=job_id)
            conn.send(("done", seq, result))
        except StemforgeError as exc:
            conn.send(("failed", seq, exc.code, exc.message, dict(exc.details)))
        except MemoryError:
            conn.send(("failed", seq, "worker_crashed", "out of memory while running the job", {}))
        except Exception as exc:  # noqa: BLE001 - a bug or a torch error fails this job only
            name = type(exc).__name__
            code = "worker_crashed" if "OutOfMemory" in name else "internal"
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            conn.send(("failed", seq, code, f"{name}: {exc}", {}))


# ==== parent side ==============================================================================
class EngineWorker:
    """Owns the worker process; runs one job at a time (the job queue serialises calls to :meth:`run`)."""

    def __init__(self, model: str | None = None, *, threads: int | None = None, device: str | None = None,
                 runner: str = DEFAULT_RUNNER, load_timeout: float = 900.0) -> None:
        self.model = model
        self.threads = threads
        self.device = device
        self.runner = runner
        self.load_timeout = load_timeout
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        self._cancel = self._ctx.Value(ctypes.c_longlong, 0, lock=False)
        self._proc: Any = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._current: tuple[int, str, asyncio.Future[Any], ProgressFn | None] | None = None
        self._seq = 0
        self._generation = 0
        self._stopping = False
        self._load_failures = 0
        self._run_lock = asyncio.Lock()
        self.payload_extra: dict[str, Any] = {}  # merged into every payload (e.g. concepts_dir, set by concept_jobs)

    # ---- lifecycle -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    async def start(self) -> dict[str, Any]:
        """Start the process and wait until the model is loaded; returns the model info."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._spawn()
        try:
            return await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    def _spawn(self) -> None:
        assert self._loop is not None
        self._generation += 1
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child_main, name="stemforge-engine",
                                 args=(child, self._cancel, self.runner, self.model, self.threads, self.device),
                                 daemon=True)
        proc.start()
        child.close()  # the parent must not hold the child's end, or EOF never comes
        self._proc, self._conn = proc, parent
        self._ready = self._loop.create_future()
        threading.Thread(target=self._reader, args=(parent, self._generation), daemon=True,
                         name=f"stemforge-worker-reader-{self._generation}").start()
        log.info("engine worker started (pid %d)", proc.pid)

    async def _wait_ready(self) -> dict[str, Any]:
        assert self._ready is not None
        info = await asyncio.wait_for(asyncio.shield(self._ready), self.load_timeout)
        self.info = info
        return info

    def _reader(self, conn: Connection, generation: int) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # noqa: BLE001 - an unpicklable message: treat the worker as broken
                log.exception("unreadable message from the engine worker")
                break
            try:
                loop.call_soon_threadsafe(self._on_message, generation, msg)
            except RuntimeError:
                return  # loop closed
        try:
            loop.call_soon_threadsafe(self._on_dead, generation)
        except RuntimeError:
            pass

    def _on_message(self, generation: int, msg: tuple[Any, ...]) -> None:
        if generation != self._generation:
            return
        kind = msg[0]
        if kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg[1])
        elif kind == "load_failed":
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(ModelError(f"the engine worker could not load the model: {msg[2]}",
                                                     cause=msg[1]))
        elif self._current is not None and msg[1] == self._current[0]:
            seq, job_id, fut, on_progress = self._current
            if kind == "progress":
                if on_progress is not None:
                    try:
                        on_progress(msg[2], msg[3], msg[4])
                    except Exception:  # noqa: BLE001
                        log.exception("progress callback failed for job %s", job_id)
            elif kind == "done" and not fut.done():
                fut.set_result(msg[2])
            elif kind == "failed" and not fut.done():
                from protocol.errors import error_from_dict

                fut.set_exception(error_from_dict({"code": msg[2], "message": msg[3], "details": msg[4]}))

    def _on_dead(self, generation: int) -> None:
        if generation != self._generation:
            return
        proc = self._proc
        if proc is not None:
            proc.join(timeout=5)
        code = proc.exitcode if proc is not None else None
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        was_ready = self._ready is not None and self._ready.done() and self._ready.exception() is None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(WorkerCrashed(f"the engine worker exited ({why}) while loading the model"))
        if self._current is not None and not self._current[2].done():
            seq, job_id, fut, _ = self._current
            fut.set_exception(WorkerCrashed(f"the engine worker died ({why}) while running job {job_id}",
                                            job_id=job_id, exit=code))
        if self._stopping:
            return
        self._load_failures = 0 if was_ready else self._load_failures + 1
        if self._load_failures >= MAX_LOAD_FAILURES:
            log.error("engine worker died %d times while loading the model (%s); not restarting it",
                      self._load_failures, why)
            self._stopping = True
            return
        log.error("engine worker (pid %s) died (%s); restarting it", proc.pid if proc else "?", why)
        self.restarts += 1
        self._spawn()

    async def stop(self, timeout: float = 3.0) -> None:
        self._stopping = True
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if conn is not None:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        await asyncio.get_running_loop().run_in_executor(None, proc.join, timeout)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        if conn is not None:
            conn.close()
        log.info("engine worker stopped")

    # ---- jobs ----------------------------------------------------------------------------------
    async def run(self, job_id: str, payload: dict[str, Any], on_progress: ProgressFn | None = None) -> Any:
        """Run one job in the worker; raises its StemforgeError (WorkerCrashed if the process died)."""
        async with self._run_lock:
            await self._wait_ready_after_restart()
            loop = asyncio.get_running_loop()
            self._seq += 1
            seq = self._seq
            fut: asyncio.Future[Any] = loop.create_future()
            self._current = (seq, job_id, fut, on_progress)
            try:
                conn = self._conn
                assert conn is not None
                try:
                    message = ("run", seq, job_id, {**self.payload_extra, **payload})
                    await loop.run_in_executor(None, conn.send, message)
                except (OSError, ValueError) as exc:
                    if not fut.done():
                        fut.set_exception(WorkerCrashed(f"cannot send job {job_id} to the engine worker: {exc}"))
                return await fut
            finally:
                self._current = None

    async def _wait_ready_after_restart(self) -> None:
        for _ in range(3):
            try:
                await self._wait_ready()
                return
            except WorkerCrashed:
                if self._stopping:
                    raise
                await asyncio.sleep(0.5)  # _on_dead already spawned a new process
        await self._wait_ready()

    def cancel(self, job_id: str) -> bool:
        """Ask the running job to stop at its next sampling step; False if it is not the running job."""
        cur = self._current
        if cur is None or cur[1] != job_id:
            return False
        self._cancel.value = cur[0]
        return True

    def kill(self) -> None:
        """SIGKILL the worker process (tests, and a hard stop); it is restarted unless stopping."""
        if self._proc is not None and self._proc.pid:
            os.kill(self._proc.pid, signal.SIGKILL)


__all__ = ["EngineWorker", "PROGRESS_HZ", "DEFAULT_RUNNER"]
