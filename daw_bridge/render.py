"""Generation jobs (generate, inpaint, continue): journaled plan -> worker payload -> takes on disk.

The dispatcher resolves everything a job needs when it accepts it (exact sample spans, the take ids
given as context, the seed) into a *plan* stored in the journal, so a job resumed after a restart
does exactly the same work. This module executes a plan:

1. read the given takes, placed on the timeline and cut to the plan's ``span`` (zeros where a take
   does not cover it);
2. run the engine pipeline in the worker process (progress and cancel go through it);
3. fit every generated stem to the exact frames the plan promises: a generated region is the
   region's length; an inpainted take is its source outside the region sample for sample; a
   continuation starts where the sources end;
4. write each stem as a take (BWF WAV + manifest, atomically) and journal it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import numpy as np
import soundfile as sf

from daw_bridge.journal import JobRow, Journal, TakeRow
from daw_bridge.jobs import JobContext
from daw_bridge.storage import SAMPLE_RATE, Storage
from daw_bridge.worker import EngineWorker
from protocol.errors import InvalidAudio, StemforgeError
from protocol.messages import JobDone, Take

log = logging.getLogger(__name__)

GENERATION_KINDS = ("generate", "inpaint", "continue")
SOURCE_OF_KIND = {"generate": "generated", "inpaint": "inpainted", "continue": "continued"}


def read_timeline(take: TakeRow, start: int, end: int) -> np.ndarray:
    """The take's audio on the timeline span ``[start, end)`` as (2, end - start) float32 (zeros outside it)."""
    out = np.zeros((2, end - start), dtype=np.float32)
    lo, hi = max(start, take.start_sample), min(end, take.start_sample + take.frames)
    if hi <= lo:
        return out
    try:
        data, sr = sf.read(take.path, start=lo - take.start_sample, stop=hi - take.start_sample, dtype="float32",
                           always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile errors are plain RuntimeErrors
        raise InvalidAudio(f"cannot read take {take.take_id} ({take.path}): {exc}", take_id=take.take_id) from None
    if sr != 48_000:
        raise InvalidAudio(f"take {take.take_id} is at {sr} Hz, expected 48000", take_id=take.take_id)
    data = data.T
    if data.shape[0] == 1:
        data = np.repeat(data, 2, axis=0)
    out[:, lo - start: lo - start + data.shape[1]] = data[:2]
    return out


def take_record(row: TakeRow) -> Take:
    return Take(take_id=row.take_id, stem=row.stem, path=row.path, start_sample=row.start_sample, frames=row.frames,
                sample_rate=row.sample_rate, sha256=row.sha256, number=row.number, format=row.format,  # type: ignore[arg-type]
                source=row.source, job_id=row.job_id, manifest_path=row.manifest_path)  # type: ignore[arg-type]


def new_take_id() -> str:
    return "t-" + secrets.token_hex(6)


def _fit(audio: np.ndarray, frames: int, what: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise StemforgeError(f"the pipeline returned {what} with shape {audio.shape}, expected (2, N)")
    if audio.shape[1] != frames:
        log.warning("pipeline returned %d frames for %s, expected %d; fitting", audio.shape[1], what, frames)
        audio = audio[:, :frames] if audio.shape[1] > frames else np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
    return np.ascontiguousarray(audio)


class Renderer:
    """Executes generation plans; registered in the job queue for generate, inpaint and continue."""

    def __init__(self, journal: Journal, storage: Storage, worker: EngineWorker) -> None:
        self.journal = journal
        self.storage = storage
        self.worker = worker

    async def __call__(self, job: JobRow, ctx: JobContext) -> JobDone:
        plan = job.request
        loop = asyncio.get_running_loop()
        ctx.emit_progress(0, 0, "loading")
        given = await loop.run_in_executor(None, self._read_given, plan)
        ctx.check_cancelled()
        span_start, span_end = plan["span"]
        payload: dict[str, Any] = {
            "task": plan["task"],
            "prompt": plan.get("prompt", ""),
            "negative_prompt": plan.get("negative_prompt", ""),
            "stems": list(plan["stems"]),
            "given": given,
            "num_samples": span_end - span_start,
            "region": None,
            "continue_samples": plan.get("continue_samples"),
            "bpm": plan.get("bpm"),
            "key": plan.get("key"),
            "chords": plan.get("chords"),
            "chord_beats": plan.get("chord_beats"),
            "chord_cfg": plan.get("chord_cfg"),
            "chroma_guidance": plan.get("chroma_guidance"),
            "seed": plan["seed"],
            "steps": plan.get("steps"),
            "sampler": plan.get("sampler"),
            "cfg": plan.get("cfg"),
            "grid_offset": span_start / SAMPLE_RATE,  # session sample 0 is bar 1: the model's beat clock
        }
        if plan["task"] == "inpaint":
            rs, re_ = plan["region"]
            payload["region"] = (rs - span_start, re_ - span_start)
        if plan["task"] == "continue":
            payload["num_samples"] = span_end - span_start
        result = await self.worker.run(job.job_id, payload, on_progress=ctx.emit_progress)
        ctx.check_cancelled()
        ctx.emit_progress(0, len(plan["stems"]), "writing")
        takes = await loop.run_in_executor(None, self._write, job, plan, given, result)
        seed = result.get("seed", plan["seed"])
        return JobDone(job_id=job.job_id, kind=job.kind, session_id=job.session_id,  # type: ignore[arg-type]
                       takes=tuple(take_record(t) for t in takes), seed=int(seed) if seed is not None else None,
                       manifest_path=takes[0].manifest_path if takes else None)

    def _read_given(self, plan: dict[str, Any]) -> dict[str, np.ndarray]:
        s, e = plan["span"]
        return {stem: read_timeline(self.journal.get_take(tid), s, e) for stem, tid in plan["given"].items()}

    def _write(self, job: JobRow, plan: dict[str, Any], given: dict[str, np.ndarray],
               result: dict[str, Any]) -> list[TakeRow]:
        session = self.journal.get_session(plan["session_id"])
        out_start, out_frames = plan["out_start"], plan["out_frames"]
        span_start = plan["span"][0]
        model = self.worker.info
        written: list[TakeRow] = []
        stems_out = result.get("stems", {})
        for stem in plan["stems"]:
            if stem not in stems_out:
                raise StemforgeError(f"the pipeline returned no audio for stem {stem!r}")
            audio = np.asarray(stems_out[stem], dtype=np.float32)
            if plan["task"] == "inpaint":
                rs, re_ = plan["region"][0] - span_start, plan["region"][1] - span_start
                base = given[stem].copy()
                gen = _fit(audio, base.shape[1], stem)
                base[:, rs:re_] = gen[:, rs:re_]  # outside the region: the source, sample for sample
                audio = base
            elif plan["task"] == "continue" and audio.ndim == 2 and audio.shape[1] > out_frames:
                audio = audio[:, -out_frames:]  # the pipeline returned context + continuation
            audio = _fit(audio, out_frames, stem)
            take_id = new_take_id()
            number = self.journal.next_take_number(session.session_id, stem)
            manifest = {
                "stemforge": "take manifest v1",
                "take_id": take_id,
                "job_id": job.job_id,
                "task": plan["task"],
                "session_id": session.session_id,
                "session_name": session.name,
                "prompt": plan.get("prompt", ""),
                "negative_prompt": plan.get("negative_prompt", ""),
                "seed": result.get("seed", plan["seed"]),
                "model": {"name": model.get("name"), "hash": model.get("hash"), "trained": model.get("trained")},
                "parameters": {k: plan.get(k) for k in ("steps", "sampler", "cfg", "bpm", "key", "chords", "chord_beats",
                                                        "chord_cfg", "chroma_guidance", "format")},
                "region": {"start_sample": out_start, "end_sample": out_start + out_frames,
                           "inpaint_region": plan.get("region"), "span": plan["span"]},
                "source_takes": {st: self._source_info(tid) for st, tid in plan["given"].items()},
                "session": {"bpm": session.bpm, "time_signature": list(session.time_signature)},
                "request": plan.get("message", {}),
                "pipeline": result.get("manifest", {}),
                "created": time.time(),
            }
            bpm = plan.get("bpm") or session.bpm
            wt = self.storage.write_take(session_id=session.session_id, session_name=session.name or session.session_id,
                                         stem=stem, bpm=bpm, number=number, audio=audio, start_sample=out_start,
                                         manifest=manifest, fmt=plan.get("format", "pcm24"))
            row = TakeRow(take_id=take_id, session_id=session.session_id, stem=stem, number=wt.number,
                          path=str(wt.path), manifest_path=str(wt.manifest_path), start_sample=out_start,
                          frames=wt.frames, sample_rate=wt.sample_rate, sha256=wt.sha256, format=wt.format,
                          source=SOURCE_OF_KIND[plan["task"]], job_id=job.job_id, created=time.time())
            self.journal.add_take(row)
            written.append(row)
        if plan["task"] == "continue":
            end = out_start + out_frames
            if end > session.length_samples:
                self.journal.update_session(session.session_id, length_samples=end)
        return written

    def _source_info(self, take_id: str) -> dict[str, Any]:
        t = self.journal.get_take(take_id)
        return {"take_id": t.take_id, "path": t.path, "sha256": t.sha256, "start_sample": t.start_sample,
                "frames": t.frames}


__all__ = ["Renderer", "read_timeline", "take_record", "new_take_id", "GENERATION_KINDS"]
