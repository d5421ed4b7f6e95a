"""The one dispatcher both transports feed: decoded requests in, replies and job events out.

A transport wraps each client in a :class:`Peer` (``send`` a protocol message, ``send_binary`` a
binary audio frame) and calls :meth:`Dispatcher.handle_text` / :meth:`handle` /
:meth:`handle_binary`. Every failure is answered with an ``error`` event carrying the stable code
of the raised :class:`StemforgeError`; nothing here can take the daemon down. Job events go to the
peer that submitted the job (with its request ``id``), or to every connected WebSocket peer when
that one is gone (a job resumed after a restart).

Handlers are looked up in ``self.handlers`` (message class -> coroutine), so a feature module can
add its own (concept training registers ``concept.*`` and a ``concept.train`` job executor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from daw_bridge.journal import ACTIVE, Journal, SessionRow
from daw_bridge.jobs import JobQueue
from daw_bridge.render import GENERATION_KINDS, Renderer, take_record
from daw_bridge.settings import Settings
from daw_bridge.storage import Storage
from daw_bridge.worker import EngineWorker
from protocol import messages as m
from protocol.codec import decode_request, request_id, request_type, to_dict
from protocol.errors import InvalidArgument, RegionError, StemforgeError, UnknownStem, UnknownTake
from protocol.region import resolve_length, resolve_region

log = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
CONTINUE_CONTEXT_SAMPLES = 48_000 * 10  # audio before the end given to a continuation
Handler = Callable[["Peer", Any], Awaitable[None]]


class Peer:
    """One client as the dispatcher sees it. Transports subclass it."""

    transport = "none"

    def __init__(self, label: str) -> None:
        self.label = label
        self.closed = False
        self.uploads: dict[int, Any] = {}  # transfer id -> upload state (see transfers.py)

    async def send(self, msg: m.Message) -> None:
        raise NotImplementedError

    async def send_binary(self, data: bytes) -> None:
        raise InvalidArgument(f"binary audio frames need a WebSocket connection, not {self.transport}")


class Dispatcher:
    def __init__(self, settings: Settings, storage: Storage, journal: Journal, worker: EngineWorker,
                 version: str) -> None:
        from daw_bridge.transfers import Transfers

        self.settings = settings
        self.storage = storage
        self.journal = journal
        self.worker = worker
        self.version = version
        self.limits = settings.limits
        self.peers: set[Peer] = set()
        self.jobs = JobQueue(journal, self._emit, max_queued=self.limits.max_queued_jobs,
                             max_attempts=settings.max_attempts, cancel_running=worker.cancel)
        renderer = Renderer(journal, storage, worker)
        for kind in GENERATION_KINDS:
            self.jobs.executors[kind] = renderer
        self._origins: dict[str, tuple[Peer, str | int | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.transfers = Transfers(self)
        self.handlers: dict[type, Handler] = {
            m.Ping: self._ping, m.ServerInfoRequest: self._server_info,
            m.SessionCreate: self._session_create, m.SessionUpdate: self._session_update,
            m.SessionGet: self._session_get, m.SessionList: self._session_list,
            m.Keep: self._keep, m.TakeSelect: self._take_select, m.ManifestGet: self._take_manifest,
            m.Generate: self._generate, m.Inpaint: self._inpaint, m.Continue: self._continue,
            m.JobList: self._job_list, m.JobCancel: self._job_cancel,
            **self.transfers.handlers(),
        }
        from daw_bridge.concept_jobs import ConceptJobs  # concept.train jobs, concept.list/delete (issue 5)

        self.concepts = ConceptJobs(self).install()

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        recovered = self.jobs.start()
        for job in recovered:
            log.info("resuming job %s (%s) after restart", job.job_id, job.kind)

    async def stop(self) -> None:
        await self.jobs.stop()
        self.transfers.close()
        for task in list(self._tasks):
            task.cancel()

    @property
    def model_stems(self) -> list[str]:
        return list(self.worker.info.get("stems", []))

    # ---- entry points --------------------------------------------------------------------------
    async def handle_text(self, peer: Peer, text: str | bytes) -> None:
        try:
            msg = decode_request(text, max_bytes=self.limits.max_message_bytes)
        except StemforgeError as exc:
            log.info("%s: refused message [%s]: %s", peer.label, exc.code, exc.message)
            await self._send_error(peer, exc, request_id(text, self.limits.max_message_bytes),
                                   request_type(text, self.limits.max_message_bytes))
            return
        await self.handle(peer, msg)

    async def handle(self, peer: Peer, msg: m.Message) -> None:
        handler = self.handlers.get(type(msg))
        try:
            if handler is None:
                raise InvalidArgument(f"{msg.TYPE!r} is not served by this daemon", type=msg.TYPE)
            await handler(peer, msg)
        except StemforgeError as exc:
            log.info("%s: %s failed [%s]: %s", peer.label, msg.TYPE, exc.code, exc.message)
            await self._send_error(peer, exc, msg.id, msg.TYPE)
        except Exception as exc:  # noqa: BLE001 - a bug answers 'internal', the daemon stays up
            log.exception("%s: internal error handling %s", peer.label, msg.TYPE)
            await self._send_error(peer, StemforgeError(f"internal error: {type(exc).__name__}: {exc}"), msg.id,
                                   msg.TYPE)

    async def handle_binary(self, peer: Peer, data: bytes) -> None:
        try:
            await self.transfers.binary_frame(peer, data)
        except StemforgeError as exc:
            log.info("%s: binary frame refused [%s]: %s", peer.label, exc.code, exc.message)
            await self._send_error(peer, exc, None, "binary")
        except Exception as exc:  # noqa: BLE001
            log.exception("%s: internal error on a binary frame", peer.label)
            await self._send_error(peer, StemforgeError(f"internal error: {exc}"), None, "binary")

    async def _send_error(self, peer: Peer, exc: StemforgeError, rid: str | int | None, rtype: str | None) -> None:
        details = {k: _json_value(v) for k, v in exc.details.items()}
        err = m.Error(id=rid, code=exc.code, message=exc.message, details=details or None, in_reply_to=rtype)
        try:
            await peer.send(err)
        except Exception:  # noqa: BLE001 - the peer is gone
            log.debug("%s: could not deliver error event", peer.label)

    def register(self, peer: Peer) -> None:
        self.peers.add(peer)

    def unregister(self, peer: Peer) -> None:
        peer.closed = True
        self.peers.discard(peer)
        self.transfers.forget(peer)

    # ---- events --------------------------------------------------------------------------------
    def _emit(self, job_id: str, event: m.Message) -> None:
        terminal = isinstance(event, (m.JobDone, m.JobFailed, m.JobCancelledEvent))
        origin = self._origins.pop(job_id, None) if terminal else self._origins.get(job_id)
        if origin is not None and not origin[0].closed:
            targets = [(origin[0], origin[1])]
        else:
            targets = [(p, None) for p in self.peers if p.transport == "ws" and not p.closed]
        for peer, rid in targets:
            self.spawn(peer.send(dataclasses.replace(event, id=rid)))

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("event delivery failed: %s", task.exception())

    # ---- simple requests -----------------------------------------------------------------------
    async def _ping(self, peer: Peer, msg: m.Ping) -> None:
        await peer.send(m.Pong(id=msg.id))

    def server_info(self, devices: tuple[m.AudioDevice, ...] = ()) -> m.ServerInfo:
        info = self.worker.info
        model = m.ModelInfo(name=str(info.get("name", "")), hash=str(info.get("hash", "")),
                            trained=bool(info.get("trained", False)), stems=tuple(info.get("stems", ())),
                            samplers=tuple(info.get("samplers", ())), default_steps=int(info.get("default_steps", 0)),
                            default_sampler=str(info.get("default_sampler", "")),
                            default_cfg=float(info.get("default_cfg", 0.0)))
        return m.ServerInfo(version=self.version, model=model, limits=self.limits, devices=devices,
                            concepts=self.concepts.infos())

    async def _server_info(self, peer: Peer, msg: m.ServerInfoRequest) -> None:
        devices = await self.transfers.devices()
        await peer.send(dataclasses.replace(self.server_info(devices), id=msg.id))

    # ---- sessions ------------------------------------------------------------------------------
    def session_info(self, s: SessionRow) -> m.SessionInfo:
        stems = []
        for name in s.stems:
            takes = tuple(take_record(t) for t in s.takes if t.stem == name)
            stems.append(m.StemState(name=name, takes=takes, active_take_id=s.active.get(name),
                                     kept=name in s.kept))
        return m.SessionInfo(session_id=s.session_id, name=s.name, bpm=s.bpm, time_signature=s.time_signature,
                             length_samples=s.length_samples, stems=tuple(stems))

    def session(self, session_id: str | None) -> SessionRow:
        """The session, or the default session (created on first use) when ``session_id`` is None."""
        if session_id is None:
            if DEFAULT_SESSION not in self.journal.list_sessions():
                try:
                    self.journal.create_session(DEFAULT_SESSION, DEFAULT_SESSION, 120.0, (4, 4),
                                                round(self.settings.default_session_seconds * 48_000),
                                                self.model_stems)
                except InvalidArgument:
                    pass  # created meanwhile (an upload thread)
            session_id = DEFAULT_SESSION
        return self.journal.get_session(session_id)

    def _check_length(self, samples: int) -> None:
        limit = self.limits.max_region_samples
        if samples > limit:
            from protocol.errors import LimitExceeded

            raise LimitExceeded(f"{samples} samples ({samples / 48_000:g} s) exceed the limit of {limit} "
                                f"({limit / 48_000:g} s)", limit=limit)

    async def _session_create(self, peer: Peer, msg: m.SessionCreate) -> None:
        stems = list(msg.stems) if msg.stems is not None else self.model_stems
        for stem in stems:
            if stem not in self.model_stems:
                raise UnknownStem(f"the model has no stem {stem!r}; stems: {self.model_stems}", stem=stem)
        length = resolve_length(msg.length, msg.length_unit, bpm=msg.bpm, time_signature=msg.time_signature)
        self._check_length(length)
        sid = "s-" + secrets.token_hex(4)
        s = self.journal.create_session(sid, msg.name or sid, msg.bpm, msg.time_signature, length, stems)
        await peer.send(m.Session(id=msg.id, session=self.session_info(s)))

    async def _session_update(self, peer: Peer, msg: m.SessionUpdate) -> None:
        s = self.session(msg.session_id)
        changes: dict[str, Any] = {}
        if msg.name is not None:
            changes["name"] = msg.name
        if msg.bpm is not None:
            changes["bpm"] = msg.bpm
        if msg.time_signature is not None:
            changes["time_signature"] = msg.time_signature
        if msg.length is not None:
            length = resolve_length(msg.length, msg.length_unit, bpm=changes.get("bpm", s.bpm),
                                    time_signature=changes.get("time_signature", s.time_signature))
            self._check_length(length)
            changes["length_samples"] = length
        s = self.journal.update_session(s.session_id, **changes)
        await peer.send(m.Session(id=msg.id, session=self.session_info(s)))

    async def _session_get(self, peer: Peer, msg: m.SessionGet) -> None:
        await peer.send(m.Session(id=msg.id, session=self.session_info(self.session(msg.session_id))))

    async def _session_list(self, peer: Peer, msg: m.SessionList) -> None:
        infos = tuple(self.session_info(self.journal.get_session(sid)) for sid in self.journal.list_sessions())
        await peer.send(m.Sessions(id=msg.id, sessions=infos))

    async def _keep(self, peer: Peer, msg: m.Keep) -> None:
        s = self.session(msg.session_id)
        s = self.journal.set_kept(s.session_id, msg.stem, msg.keep, take_id=msg.take_id)
        await peer.send(m.Session(id=msg.id, session=self.session_info(s)))

    async def _take_select(self, peer: Peer, msg: m.TakeSelect) -> None:
        s = self.session(msg.session_id)
        s = self.journal.set_kept(s.session_id, msg.stem, msg.stem in s.kept, take_id=msg.take_id)
        await peer.send(m.Session(id=msg.id, session=self.session_info(s)))

    async def _take_manifest(self, peer: Peer, msg: m.ManifestGet) -> None:
        """The recall manifest beside the take, as written on disk (uploads without one: the take's record)."""
        take = self.journal.get_take(msg.take_id)  # UnknownTake
        if take.manifest_path:
            try:
                manifest = json.loads(await asyncio.to_thread(Path(take.manifest_path).read_text))
            except (OSError, ValueError) as exc:  # removed or edited by hand on the host
                raise UnknownTake(f"the manifest of take {take.take_id!r} cannot be read "
                                  f"({take.manifest_path}): {exc}", take_id=take.take_id) from None
        else:
            manifest = dataclasses.asdict(take)
        await peer.send(m.Manifest(id=msg.id, take_id=take.take_id, manifest=manifest))

    # ---- generation jobs -----------------------------------------------------------------------
    def _check_stem(self, s: SessionRow, stem: str) -> None:
        if stem not in s.stems:
            raise UnknownStem(f"session {s.session_id!r} has no stem {stem!r}; stems: {s.stems}", stem=stem)
        if stem not in self.model_stems:
            raise UnknownStem(f"the model cannot generate stem {stem!r}; stems: {self.model_stems}", stem=stem)

    def _check_takes(self, s: SessionRow, takes: dict[str, str]) -> None:
        for stem, tid in takes.items():
            t = self.journal.get_take(tid)  # UnknownTake
            if t.session_id != s.session_id:
                raise UnknownTake(f"take {tid!r} is not in session {s.session_id!r}", take_id=tid)
            if t.stem != stem:
                raise UnknownTake(f"take {tid!r} is a {t.stem} take, not {stem}", take_id=tid, stem=stem)

    def _common_plan(self, msg: m.Generate | m.Inpaint | m.Continue, s: SessionRow) -> dict[str, Any]:
        samplers = self.worker.info.get("samplers") or []
        if msg.sampler is not None and samplers and msg.sampler not in samplers:
            raise InvalidArgument(f"unknown sampler {msg.sampler!r}; known: {samplers}", field=f"{msg.TYPE}.sampler")
        return {"task": msg.TYPE, "session_id": s.session_id, "prompt": msg.prompt,
                "negative_prompt": msg.negative_prompt,
                "seed": msg.seed if msg.seed is not None else secrets.randbits(31),
                "steps": msg.steps, "sampler": msg.sampler, "cfg": msg.cfg, "bpm": msg.bpm or s.bpm, "key": msg.key,
                "chords": msg.chords, "chord_beats": msg.chord_beats, "chord_cfg": msg.chord_cfg,
                "chroma_guidance": msg.chroma_guidance, "format": msg.format, "message": to_dict(msg)}

    def plan_generate(self, msg: m.Generate) -> dict[str, Any]:
        s = self.session(msg.session_id)
        start, end = resolve_region(msg.region, total_samples=s.length_samples, bpm=s.bpm,
                                    time_signature=s.time_signature)
        self._check_length(end - start)
        if msg.keep is None:  # the session's kept stems, except those asked for explicitly
            keep = {st: s.active[st] for st in s.kept if st in s.active and st not in msg.stems}
        else:
            keep = dict(msg.keep)
        for stem in keep:
            if stem not in s.stems:
                raise UnknownStem(f"session {s.session_id!r} has no stem {stem!r}; stems: {s.stems}", stem=stem)
        self._check_takes(s, keep)
        stems = list(msg.stems) or [st for st in s.stems if st not in keep]
        if not stems:
            raise InvalidArgument("nothing to generate: every stem of the session is kept", field="generate.stems")
        for stem in stems:
            self._check_stem(s, stem)
        return {**self._common_plan(msg, s), "stems": stems, "given": keep, "span": [start, end], "region": None,
                "out_start": start, "out_frames": end - start}

    def plan_inpaint(self, msg: m.Inpaint) -> dict[str, Any]:
        s = self.session(msg.session_id)
        sources = dict(msg.sources) if msg.sources is not None else dict(s.active)
        self._check_takes(s, sources)
        for stem in msg.stems:
            self._check_stem(s, stem)
            if stem not in sources:
                raise UnknownTake(f"stem {stem!r} has no take to inpaint yet; generate or upload one first",
                                  stem=stem)
        rows = [self.journal.get_take(sources[st]) for st in msg.stems]
        span_start = min(t.start_sample for t in rows)
        span_end = max(t.start_sample + t.frames for t in rows)
        start, end = resolve_region(msg.region, total_samples=max(s.length_samples, span_end), bpm=s.bpm,
                                    time_signature=s.time_signature)
        if start < span_start or end > span_end:
            raise RegionError(f"inpaint region (samples {start}..{end}) is outside the source takes "
                              f"(samples {span_start}..{span_end})", start=start, end=end)
        self._check_length(span_end - span_start)
        return {**self._common_plan(msg, s), "stems": list(msg.stems), "given": sources,
                "span": [span_start, span_end], "region": [start, end], "out_start": span_start,
                "out_frames": span_end - span_start}

    def plan_continue(self, msg: m.Continue) -> dict[str, Any]:
        s = self.session(msg.session_id)
        sources = dict(msg.sources) if msg.sources is not None else dict(s.active)
        self._check_takes(s, sources)
        stems = list(msg.stems) or [st for st in s.stems if st in sources]
        if not stems:
            raise UnknownTake(f"session {s.session_id!r} has no takes to continue")
        for stem in stems:
            self._check_stem(s, stem)
            if stem not in sources:
                raise UnknownTake(f"stem {stem!r} has no take to continue; generate or upload one first", stem=stem)
        given = {st: sources[st] for st in stems}  # the pipeline extends every input stem
        rows = [self.journal.get_take(t) for t in given.values()]
        span_end = max(t.start_sample + t.frames for t in rows)
        span_start = max(min(t.start_sample for t in rows), span_end - CONTINUE_CONTEXT_SAMPLES)
        frames = round(msg.seconds * 48_000)
        self._check_length(frames)
        return {**self._common_plan(msg, s), "stems": stems, "given": given, "span": [span_start, span_end],
                "region": None, "out_start": span_end, "out_frames": frames, "continue_samples": frames}

    async def submit(self, peer: Peer, msg: m.Message, kind: str, plan: dict[str, Any]) -> str:
        """Journal and queue a job, register ``peer`` for its events, send ``job.accepted``; returns the id."""
        job_id = "j-" + secrets.token_hex(6)
        row, position = self.jobs.submit(kind, plan, plan.get("session_id"), job_id)
        self._origins[job_id] = (peer, msg.id)
        await peer.send(m.JobAccepted(id=msg.id, job_id=job_id, kind=kind, session_id=row.session_id,  # type: ignore[arg-type]
                                      position=position, seed=plan.get("seed")))
        return job_id

    async def _generate(self, peer: Peer, msg: m.Generate) -> None:
        await self.submit(peer, msg, "generate", self.plan_generate(msg))

    async def _inpaint(self, peer: Peer, msg: m.Inpaint) -> None:
        await self.submit(peer, msg, "inpaint", self.plan_inpaint(msg))

    async def _continue(self, peer: Peer, msg: m.Continue) -> None:
        await self.submit(peer, msg, "continue", self.plan_continue(msg))

    # ---- job list / cancel ---------------------------------------------------------------------
    async def _job_list(self, peer: Peer, msg: m.JobList) -> None:
        if msg.session_id is not None:
            self.journal.get_session(msg.session_id)  # UnknownSession
        rows = self.journal.list_jobs(session_id=msg.session_id, states=ACTIVE if msg.active_only else None)
        await peer.send(m.Jobs(id=msg.id, jobs=tuple(self.jobs.info(r) for r in rows)))

    async def _job_cancel(self, peer: Peer, msg: m.JobCancel) -> None:
        self.jobs.cancel(msg.job_id)
        await peer.send(m.Ok(id=msg.id, request=msg.TYPE))


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return str(value)


__all__ = ["Dispatcher", "Peer", "DEFAULT_SESSION"]
