"""Concepts in the daemon: ``concept.train`` as a queued, journaled job; ``concept.list`` / ``concept.delete``;
the library in ``server.info``; ``<NAME>`` references in generation prompts resolved in the engine worker.

Main process (no torch: the library is read through :mod:`engine.concepts.index`, JSON headers only):

- :meth:`ConceptJobs.install` registers the request handlers and the ``concept.train`` executor on the dispatcher
  and tells the engine worker where the library is (``concepts_dir`` in every payload).
- ``concept.train`` resolves its reference audio when it is accepted (so a job resumed after a restart does the same
  work): ``take_ids`` -> the takes' files, ``reference_ids`` -> uploads with purpose ``reference``
  (``<data dir>/references/<id>.wav``), ``paths`` -> host files inside ``--allow-dir`` folders (OSC). The name must
  be new. The plan is journaled; the executor sends it to the worker, whose progress and cancel work as for
  generation (cancel stops within one training step). The concept file is written once, at the end.

Worker process: :func:`run_in_worker` wraps the runner's ``run``: ``concept.train`` payloads train (engine.concepts),
every other payload runs with the concepts its prompts name applied, and removed again afterwards.

Operators can tune training on a host with ``STEMFORGE_CONCEPT_OPTIONS`` (JSON of
:class:`engine.concepts.trainer.ConceptOptions` fields, e.g. ``{"batch": 2}``), read by the worker.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.concepts import index as concept_index
from engine.concepts.tokens import check_name
from protocol import messages as m
from protocol.errors import ConceptError, InvalidArgument, UnknownTake

if TYPE_CHECKING:
    from daw_bridge.dispatcher import Dispatcher, Peer
    from daw_bridge.jobs import JobContext
    from daw_bridge.journal import JobRow

log = logging.getLogger(__name__)

KIND = "concept.train"
OPTIONS_ENV = "STEMFORGE_CONCEPT_OPTIONS"


class ConceptJobs:
    def __init__(self, dispatcher: "Dispatcher") -> None:
        self.d = dispatcher
        self.root = Path(dispatcher.settings.data_dir) / "concepts"

    def install(self) -> "ConceptJobs":
        self.d.handlers[m.ConceptTrain] = self._train
        self.d.handlers[m.ConceptList] = self._list
        self.d.handlers[m.ConceptDelete] = self._delete
        self.d.jobs.executors[KIND] = self.execute
        extra = getattr(self.d.worker, "payload_extra", None)
        if isinstance(extra, dict):
            extra["concepts_dir"] = str(self.root)
        return self

    # ---- library -------------------------------------------------------------------------------
    def infos(self) -> tuple[m.ConceptInfo, ...]:
        fields = ("name", "method", "tokens", "base_model_hash", "reference_sha256", "steps", "created")
        return tuple(m.ConceptInfo(**{k: i[k] for k in fields}) for i in concept_index.infos(self.root))

    async def _list(self, peer: "Peer", msg: m.ConceptList) -> None:
        await peer.send(m.Concepts(id=msg.id, concepts=self.infos()))

    async def _delete(self, peer: "Peer", msg: m.ConceptDelete) -> None:
        names = concept_index.delete(self.root, msg.name)
        log.info("deleted concept file holding %s", names)
        await peer.send(m.Ok(id=msg.id, request=msg.TYPE))

    # ---- training jobs -------------------------------------------------------------------------
    def _reference_paths(self, msg: m.ConceptTrain) -> list[str]:
        paths: list[str] = []
        for tid in msg.take_ids:
            paths.append(self.d.journal.get_take(tid).path)  # UnknownTake
        for rid in msg.reference_ids:
            path = self.d.storage.root / "references" / f"{Path(rid).name}.wav"
            if not path.is_file():
                raise UnknownTake(f"no uploaded reference {rid!r} (upload.begin with purpose 'reference' first)",
                                  reference_id=rid)
            paths.append(str(path))
        for p in msg.paths:
            paths.append(str(self.d.transfers.check_path(p)))  # PathNotAllowed outside --allow-dir
        return paths

    def _check_new(self, name: str) -> None:
        if name in concept_index.index(self.root):
            raise ConceptError(f"concept {name!r} exists already; delete it first (concept.delete)", concept=name)
        for row in self.d.journal.list_jobs(states=("queued", "running")):
            if row.kind == KIND and row.request.get("name") == name:
                raise ConceptError(f"concept {name!r} is being trained by job {row.job_id}", concept=name,
                                   job_id=row.job_id)

    async def _train(self, peer: "Peer", msg: m.ConceptTrain) -> None:
        name = check_name(msg.name)
        self._check_new(name)
        paths = self._reference_paths(msg)
        plan: dict[str, Any] = {"name": name, "method": msg.method, "steps": msg.steps, "description": msg.description,
                                "paths": paths, "concepts_dir": str(self.root), "session_id": None}
        await self.d.submit(peer, msg, KIND, plan)

    async def execute(self, job: "JobRow", ctx: "JobContext") -> m.JobDone:
        plan = job.request
        ctx.emit_progress(0, 0, "loading")
        ctx.check_cancelled()
        payload = {**plan, "task": KIND}
        result = await self.d.worker.run(job.job_id, payload, on_progress=ctx.emit_progress)
        ctx.check_cancelled()
        info = dict(result["concept"])
        info["tokens"] = tuple(info["tokens"])
        return m.JobDone(job_id=job.job_id, kind=KIND, session_id=None, concept=m.ConceptInfo(**info))


# ==== worker process ===========================================================================
def _train_in_worker(model: Any, payload: dict[str, Any], progress: Any) -> dict[str, Any]:
    from engine.concepts.store import ConceptLibrary
    from engine.concepts.train import train_concepts
    from engine.concepts.trainer import ConceptOptions

    extra = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    if not isinstance(extra, dict):
        raise InvalidArgument(f"{OPTIONS_ENV} must hold a JSON object")
    opts = ConceptOptions(**{**extra, "method": payload.get("method") or "pivotal", "steps": payload.get("steps"),
                             "description": payload.get("description") or ""})
    library = ConceptLibrary(payload["concepts_dir"])
    concept = train_concepts(model, [(payload["name"], list(payload["paths"]))], opts, library=library,
                             progress=progress)
    info = concept.info(concept.names[0])
    info["tokens"] = list(info["tokens"])
    return {"concept": info, "path": str(concept.path), "meta": json.loads(json.dumps(concept.meta, default=str))}


def run_in_worker(runner: Any, state: Any, payload: dict[str, Any], progress: Any) -> Any:
    """The worker's job entry: concept training, or the runner with the prompts' concepts applied."""
    if payload.get("task") == KIND:
        return _train_in_worker(state, payload, progress)
    from engine.concepts.tokens import referenced_names

    prompts = [payload.get("prompt"), payload.get("negative_prompt")]
    if not any(referenced_names(p) for p in prompts) or not hasattr(state, "unet"):
        return runner.run(state, payload, progress)
    from engine.concepts.apply import concepts_for_prompts
    from engine.concepts.store import ConceptLibrary, concepts_dir

    root = payload.get("concepts_dir") or str(concepts_dir())
    with concepts_for_prompts(state, ConceptLibrary(root), prompts, seed=payload.get("seed")) as (prompt, negative):
        result = runner.run(state, {**payload, "prompt": prompt, "negative_prompt": negative}, progress)
    if isinstance(result, dict) and isinstance(result.get("manifest"), dict):
        result["manifest"]["expanded_prompt"] = prompt
        result["manifest"]["prompt"] = payload.get("prompt")
    return result


__all__ = ["ConceptJobs", "run_in_worker", "KIND"]
